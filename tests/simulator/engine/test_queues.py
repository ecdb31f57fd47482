"""The wait queues alone: ranking queue heads, skipping started runs, reading the runs
behind a head, and the lazy walk of a heap."""

from __future__ import annotations

import heapq
import random

import pytest

from commonlab.simulator.engine.queues import WaitQueues, sorted_heap


def queues(priorities: dict[int, float], queued_at: list[float], n_keys: int = 2) -> WaitQueues:
    """Each queue's priority is fixed (by key); runs are numbered 0.."""
    return WaitQueues(
        n_keys,
        len(queued_at),
        priority=lambda key, job: priorities[key],
        queued_at=queued_at,
    )


def live(q: WaitQueues) -> list[int]:
    """The keys of the ranked heap's live entries, best first."""
    return [entry[3] for entry in q.ranked_heads()]


def test_the_heap_ranks_queues_by_priority_then_by_the_older_head() -> None:
    q = queues({0: 1.0, 1: 5.0, 2: 1.0}, [0.0, 1.0, 2.0, 3.0], n_keys=3)
    for run, key in [(0, 2), (1, 0), (2, 1), (3, 1)]:
        q.arrive(run, key)
    assert live(q) == [1, 2, 0]
    assert q.total == 4
    # A queue's second run does not add an entry: only heads are ranked.
    assert len(q.heap) == 3


def test_touch_moves_the_head_past_started_runs_and_outdates_the_old_entry() -> None:
    q = queues({0: 1.0, 1: 1.0}, [0.0, 1.0, 2.0])
    for run in range(3):
        q.arrive(run, 0)
    q.waiting[0] = q.waiting[1] = 0  # started by a pass
    q.touch(0)
    assert q.head[0] == 2
    assert [e[3] for e in q.ranked_heads()] == [0] and len(q.heap) == 2  # one stale
    q.waiting[2] = 0
    q.touch(0)
    assert live(q) == []


@pytest.mark.parametrize(
    ("started", "after", "expected"),
    [
        (set(), 0, 1),  # the next run
        ({1, 2}, 0, 3),  # started runs are skipped
        ({1, 2, 3}, 0, None),  # nothing waits behind
        (set(), 3, None),  # the last run
    ],
)
def test_push_next_finds_the_next_waiting_run(started, after, expected) -> None:
    q = queues({0: 2.0, 1: 0.0}, [0.0, 1.0, 2.0, 3.0])
    for run in range(4):
        q.arrive(run, 0)
    for run in started:
        q.waiting[run] = 0
    behind: list = []
    q.push_next(0, after, behind)
    assert [(e[2], e[3]) for e in behind] == ([] if expected is None else [(0, expected)])


def test_heads_and_waiting_heads() -> None:
    q = queues({0: 1.0, 1: 3.0}, [0.0, 1.0, 2.0])
    q.arrive(0, 0)
    q.arrive(1, 0)
    q.arrive(2, 1)
    q.waiting[0] = 0  # started; the head index is not moved yet
    assert [(e[2], e[3]) for e in sorted(q.heads())] == [(1, 0), (0, 0)]
    assert [(e[2], e[3]) for e in sorted(q.waiting_heads([0, 1]))] == [(1, 0), (0, 1)]


def test_a_requeued_run_waits_at_the_back_unranked_until_touched() -> None:
    # One job; its next run, number 1, is the first row past the table (as Runs.cut numbers it).
    q = WaitQueues(1, 1, priority=lambda key, job: 1.0, queued_at=[0.0, 5.0])
    q.arrive(0, 0)
    q.waiting[0] = 0
    q.total -= 1
    q.requeue(1, 0)
    assert q.total == 1 and q.queue[0] == [0, 1] and live(q) == [0]  # the stale head entry
    q.touch(0)
    assert q.head[0] == 1 and live(q) == [0]


@pytest.mark.parametrize("size", [0, 1, 2, 7, 100])
def test_sorted_heap_walks_a_heap_in_order(size: int) -> None:
    items = [random.Random(size).random() for _ in range(size)]
    heap = list(items)
    heapq.heapify(heap)
    before = list(heap)
    assert list(sorted_heap(heap)) == sorted(items)
    assert heap == before  # the heap itself is left as it was
