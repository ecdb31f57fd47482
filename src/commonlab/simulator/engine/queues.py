"""The waiting runs: one FIFO queue per policy key, each with a head that skips runs already
started, and a heap that ranks the queues by their head run's priority (an entry goes stale
when its queue is re-ranked; a version number tells)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

__all__ = ["Entry", "WaitQueues", "sorted_heap"]

# (-priority, queued at, version or index, key): the heap's order is the scheduling order,
# highest priority first and, among equals, the run queued first.
Entry = tuple[float, float, int, int]


def sorted_heap(heap: list) -> Iterator:
    """The items of a binary heap in ascending order, lazily (k items in O(k log k))."""
    if not heap:
        return
    frontier = [(heap[0], 0)]
    size = len(heap)
    while frontier:
        item, i = heapq.heappop(frontier)
        yield item
        left = 2 * i + 1
        if left < size:
            heapq.heappush(frontier, (heap[left], left))
            if left + 1 < size:
                heapq.heappush(frontier, (heap[left + 1], left + 1))


class WaitQueues:
    """`queue[key]` lists runs in the order they were queued; `head[key]` is the index of its
    first waiting run (runs before it have started; runs after it may have too, started by
    a backfill or reclaim pass, which `waiting` tells). `heap` holds one live entry
    (-priority, queued at, version, key) per queue with a waiting head."""

    __slots__ = (
        "head",
        "heap",
        "parked",
        "priority",
        "queue",
        "queued_at",
        "total",
        "version",
        "waiting",
    )

    def __init__(
        self,
        n_keys: int,
        n_runs: int,
        *,
        priority: Callable[[int, int], float],
        queued_at: list[float],
    ) -> None:
        self.queue: list[list[int]] = [[] for _ in range(n_keys)]
        self.head = [0] * n_keys
        self.version = [0] * n_keys
        self.waiting = bytearray(n_runs)
        self.heap: list[Entry] = []
        # Per pool at its cap: the entries the main pass took out of `heap` (main_pass.py).
        self.parked: dict[int, list[Entry]] = {}
        self.total = 0  # runs waiting
        self.priority = priority
        self.queued_at = queued_at

    def arrive(self, j: int, key: int) -> None:
        """Queue run j (a new job) at the back of queue `key`."""
        self.waiting[j] = 1
        self.total += 1
        q = self.queue[key]
        q.append(j)
        h = self.head[key]
        if h == len(q) - 1 or not self.waiting[q[h]]:
            self.touch(key)

    def requeue(self, r: int, key: int) -> None:
        """Queue run r (the next run of a preempted job, numbered at the end) at the back of
        queue `key`; it is ranked when its queue is next touched."""
        self.waiting.append(1)
        self.total += 1
        self.queue[key].append(r)

    def touch(self, key: int) -> None:
        """Re-rank queue `key` after its head or its priority changed."""
        q, h = self.queue[key], self.head[key]
        waiting = self.waiting
        while h < len(q) and not waiting[q[h]]:
            h += 1
        self.head[key] = h
        if h > 4096 and h * 2 > len(q):
            # Drop the started runs from the front once they are most of the list.
            del q[:h]
            self.head[key] = h = 0
        self.version[key] += 1
        if h < len(q):
            j = q[h]
            heapq.heappush(
                self.heap, (-self.priority(key, j), self.queued_at[j], self.version[key], key)
            )

    def rerank(self) -> None:
        """Every priority may have changed (a policy tick): rank every queue afresh."""
        self.heap.clear()
        self.parked.clear()
        self.touch_all()

    def touch_all(self) -> None:
        """Re-rank every queue, the entries already in the heap left to go stale (priorities
        that depend on running work changed)."""
        # `touch` for every key with the lookups done once: a tick re-ranks thousands of
        # queues (one per tenant and job size), as often as jobs start.
        queue, head, version, waiting = self.queue, self.head, self.version, self.waiting
        heap, priority, queued_at = self.heap, self.priority, self.queued_at
        for key, q in enumerate(queue):
            h = head[key]
            while h < len(q) and not waiting[q[h]]:
                h += 1
            head[key] = h
            if h > 4096 and h * 2 > len(q):
                del q[:h]
                head[key] = h = 0
            version[key] += 1
            if h < len(q):
                j = q[h]
                heapq.heappush(heap, (-priority(key, j), queued_at[j], version[key], key))

    def drop_started(self, key: int, end: int) -> None:
        """Drop the runs that started from queue `key` up to index `end` (from its head
        on: those before it are dropped by `touch`). A pass that read past runs a backfill
        started calls this so that the next pass does not read past them again: behind a
        head that waits for long, they pile up by the thousand. Indices into the queue
        change, so no pass may hold one across this call."""
        q, h, waiting = self.queue[key], self.head[key], self.waiting
        q[h:end] = [r for r in q[h:end] if waiting[r]]

    def push_next(self, key: int, i: int, heap: list[Entry]) -> None:
        """Push the first waiting run after index i of queue `key` onto `heap`, as
        (-priority, queued at, key, index)."""
        q = self.queue[key]
        waiting = self.waiting
        i += 1
        while i < len(q) and not waiting[q[i]]:
            i += 1
        if i < len(q):
            k = q[i]
            heapq.heappush(heap, (-self.priority(key, k), self.queued_at[k], key, i))

    def heads(self) -> list[Entry]:
        """Every non-empty queue's head as a heap of (-priority, queued at, key, index); the
        head may have started (callers skip it)."""
        priority, queued_at = self.priority, self.queued_at
        cursor = []
        for key, (q, h) in enumerate(zip(self.queue, self.head, strict=True)):
            if h < len(q):
                j = q[h]
                cursor.append((-priority(key, j), queued_at[j], key, h))
        heapq.heapify(cursor)
        return cursor

    def ranked_heads(self) -> Iterator[Entry]:
        """The live entries of the ranked heap and of the parked queues, best first, read
        lazily."""
        version = self.version
        ranked = sorted_heap(self.heap)
        if self.parked:
            aside = sorted(e for entries in self.parked.values() for e in entries)
            ranked = heapq.merge(ranked, aside)
        return (e for e in ranked if e[2] == version[e[3]])

    def waiting_heads(self, keys: Iterable[int]) -> list[Entry]:
        """The first waiting run of each of `keys` as a heap of (-priority, queued at, key,
        index)."""
        priority, queued_at, waiting = self.priority, self.queued_at, self.waiting
        cursor = []
        for key in keys:
            h = self.head[key]
            q = self.queue[key]
            while h < len(q) and not waiting[q[h]]:
                h += 1
            if h < len(q):
                cursor.append((-priority(key, q[h]), queued_at[q[h]], key, h))
        heapq.heapify(cursor)
        return cursor
