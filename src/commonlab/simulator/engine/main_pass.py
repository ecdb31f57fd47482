"""The main scheduling pass, run after every event that changed something: queue heads in
priority order, each started on its best-fit partition if it fits; a head that does not fit
keeps its place by blocking the partitions it may use, until every partition is blocked or
`main_depth` jobs were tried (Slurm's main scheduler, per partition)."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commonlab.simulator.engine.core import Engine
    from commonlab.simulator.engine.queues import Entry

__all__ = ["MainPass"]


class MainPass:
    """Runs jobs behind a blocked head of their own queue too (as (priority, queued, key,
    index) in a second heap), so that one queue's blocked head does not stop the jobs behind
    it from using partitions it cannot."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queues = engine.queues
        self.placement = engine.placement
        self.eligible = engine.runs.eligible
        self.depth = engine.settings.main_depth
        # Per pool, the accelerators it may hold (the policy's caps, Slurm GrpTRES), or None.
        self.caps = engine.policy.caps
        self.pool_running = engine.state.pool_running
        self.pool = engine.runs.pool

    def run(self) -> None:
        # Called at almost every event and usually done after a job or two: what a blocked
        # job needs is read only when one is.
        queues, placement, start = self.queues, self.placement, self.engine.start
        key_heap, version = queues.heap, queues.version
        depth, caps = self.depth, self.caps
        if caps is not None:
            parked, pool_running, pool_of = queues.parked, self.pool_running, self.pool
            if parked:
                self._unpark(caps)
        blocked: set[int] = set()
        held = []
        behind: list[Entry] = []
        tried = 0
        while (key_heap or behind) and tried < depth and placement.free_total:
            if behind and (not key_heap or behind[0][:2] < key_heap[0][:2]):
                _, _, key, i = heapq.heappop(behind)
                entry = None
            else:
                entry = heapq.heappop(key_heap)
                key = entry[3]
                if entry[2] != version[key]:
                    continue
                i = queues.head[key]
            j = queues.queue[key][i]
            if caps is not None and self.engine.over_cap(j):
                # Its pool is at its cap: the job waits without holding partitions. A queue
                # of a pool that holds all its cap leaves the heap until the pool runs below
                # it, rather than be read and put back at every event.
                if entry is not None:
                    pool = pool_of[j]
                    if pool_running[pool] >= caps[pool]:
                        parked.setdefault(pool, []).append(entry)
                    else:
                        held.append(entry)
                continue
            tried += 1
            p = placement.choose(j, blocked)
            if p >= 0:
                start(j, p)
                if entry is not None:
                    queues.touch(key)
                else:
                    queues.push_next(key, i, behind)
                continue
            # j keeps its place: lower-priority jobs may not take the partitions it waits for,
            # but may take others.
            if entry is not None:
                held.append(entry)
            blocked.update(self.eligible[j])
            free, n_parts = placement.free, placement.n_parts
            if len(blocked) == n_parts or not any(
                free[p] for p in range(n_parts) if p not in blocked
            ):
                break
            queues.push_next(key, i, behind)
        for entry in held:
            heapq.heappush(key_heap, entry)

    def _unpark(self, caps: list[float]) -> None:
        """Queues of pools now below their cap go back to the ranked heap."""
        parked, pool_running, key_heap = self.queues.parked, self.pool_running, self.queues.heap
        for pool in [pool for pool in parked if pool_running[pool] < caps[pool]]:
            for entry in parked.pop(pool):
                heapq.heappush(key_heap, entry)
