"""Reclaim by preemption, for policies that preempt: every backfill interval, the runs the
policy's own plan names are preempted (`Policy.evictions`: commonlab's share controller),
then waiting jobs of the pools the policy lets reclaim start, preempting the newest runs of
pools it lets be preempted where nothing is free (Kueue's reclaimWithinCohort). Keeps, only
for such policies, which runs each pool holds on each partition."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from commonlab.simulator.engine.core import Engine
    from commonlab.simulator.engine.policy import RunningRuns

__all__ = ["Preemption"]


class Preemption:
    """`run_lists[p][v]`: runs of pool v started on partition p, in start order (ended ones
    are dropped lazily); `used_on[p][v]`: the accelerators they hold; `key_pools[v]`: the
    queues of pool v. Installs itself as the engine's start and stop listener."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        runs = engine.runs
        n_parts, n_pools = engine.placement.n_parts, len(engine.state.pool_running)
        self.n_pools = n_pools
        # The run table's columns (they grow in place as runs are added).
        self._pool, self._size = runs.pool, runs.size
        self.run_lists: list[list[list[int]]] = [
            [[] for _ in range(n_pools)] for _ in range(n_parts)
        ]
        self.used_on = [[0] * n_pools for _ in range(n_parts)]
        self.key_pools: list[list[int]] = [[] for _ in range(n_pools)]
        keys, pools = np.array(runs.key, dtype=np.int64), np.array(runs.pool, dtype=np.int64)
        if len(keys):
            first = np.full(engine.n_keys, -1, dtype=np.int64)
            first[keys[::-1]] = pools[::-1]
            if np.any(first[keys] != pools):
                raise ValueError(
                    f"policy {engine.policy.name} preempts but a queue holds several pools"
                )
            for key, p in enumerate(first.tolist()):
                if p >= 0:
                    self.key_pools[p].append(key)
        engine.on_start = self.started
        engine.on_stop = self.stopped

    def started(self, j: int, p: int) -> None:
        pool = self._pool[j]
        self.run_lists[p][pool].append(j)
        self.used_on[p][pool] += self._size[j]

    def stopped(self, j: int, p: int) -> None:
        self.used_on[p][self._pool[j]] -= self._size[j]

    def victims(self, j: int, p: int) -> list[int] | None:
        """Runs to preempt, newest first, so that run j fits on partition p; None if the
        pools that may be preempted do not hold enough there."""
        engine = self.engine
        runs, placement, policy = engine.runs, engine.placement, engine.policy
        size, running, placed, start_time = runs.size, runs.running, runs.placed, runs.start_time
        is_victim = policy.is_victim
        need = size[j]
        if runs.one_domain[j] and placement.multi[p]:
            # The domains with the most free accelerators first; a bounded scan.
            allocation = placement.allocation
            domain_runs = placement.domain_runs[p]
            scanned = 0
            levels = placement.buckets[p]
            for k in range(placement.top[p], -1, -1):
                for d in levels[k]:
                    candidates = [r for r in domain_runs[d] if is_victim(runs.pool[r])]
                    gain = sum(t for r in candidates for dd, t in allocation[r] if dd == d)
                    if k + gain >= need:
                        candidates.sort(key=start_time.__getitem__, reverse=True)
                        chosen, have = [], k
                        for r in candidates:
                            chosen.append(r)
                            have += sum(t for dd, t in allocation[r] if dd == d)
                            if have >= need:
                                return chosen
                    scanned += 1
                    if scanned >= engine.settings.reclaim_domains:
                        return None
            return None
        used = self.used_on[p]
        pools = range(self.n_pools)
        if placement.free[p] + sum(used[v] for v in pools if is_victim(v)) < need:
            return None
        candidates = []
        for v in pools:
            if not used[v] or not is_victim(v):
                continue
            got = 0
            for r in reversed(self.run_lists[p][v]):
                if running[r] and placed[r] == p:
                    candidates.append(r)
                    got += size[r]
                    if got >= need:
                        break
        candidates.sort(key=start_time.__getitem__, reverse=True)
        chosen, have = [], placement.free[p]
        for r in candidates:
            chosen.append(r)
            have += size[r]
            if have >= need:
                return chosen
        return None

    def newest_runs(self, pool: int, n: int) -> RunningRuns:
        """The newest `n` running runs of `pool`, newest first: numbers, pools,
        accelerators and start times."""
        runs = self.engine.runs
        running, placed, start_time = runs.running, runs.placed, runs.start_time

        def on(p: int) -> Iterator[int]:
            # Each partition's list is in start order: read it from the end.
            return (r for r in reversed(self.run_lists[p][pool]) if running[r] and placed[r] == p)

        merged = heapq.merge(
            *(on(p) for p in range(len(self.run_lists))),
            key=start_time.__getitem__,
            reverse=True,
        )
        listed = list(itertools.islice(merged, n))
        return (
            listed,
            [pool] * len(listed),
            [self._size[r] for r in listed],
            [start_time[r] for r in listed],
        )

    def waiting_sizes(self, pool: int, n: int) -> list[int]:
        """Accelerators of the first `n` waiting runs of `pool`, highest priority first."""
        queues, size = self.engine.queues, self.engine.runs.size
        cursor = queues.waiting_heads(self.key_pools[pool])
        sizes: list[int] = []
        while cursor and len(sizes) < n:
            _, _, key, i = heapq.heappop(cursor)
            sizes.append(size[queues.queue[key][i]])
            queues.push_next(key, i, cursor)
        return sizes

    def _compact(self) -> None:
        """Drop ended runs from the run lists once they are most of a list."""
        runs = self.engine.runs
        running, placed = runs.running, runs.placed
        for p, lists in enumerate(self.run_lists):
            used = self.used_on[p]
            for v, listed in enumerate(lists):
                if len(listed) > 64 and len(listed) > 2 * used[v]:
                    lists[v] = [r for r in listed if running[r] and placed[r] == p]

    def run(self) -> None:
        """One reclaim pass: the policy's evictions, then at most `reclaim_depth` jobs,
        pools in the order the policy gives (`reclaimers`)."""
        engine = self.engine
        queues, placement, policy = engine.queues, engine.placement, engine.policy
        runs = engine.runs
        size, eligible, pool = runs.size, runs.eligible, runs.pool
        budget = engine.settings.reclaim_depth
        retouch: set[int] = set()
        for r in policy.evictions(self.newest_runs, self.waiting_sizes):
            if runs.running[r]:
                retouch.add(engine.preempt(r))
        for p_pool in policy.reclaimers():
            cursor = queues.waiting_heads(self.key_pools[p_pool])
            while cursor and budget:
                _, _, key, i = heapq.heappop(cursor)
                j = queues.queue[key][i]
                if not policy.may_reclaim(p_pool, size[j]):
                    break
                budget -= 1
                part = placement.choose(j, None)
                if part < 0:
                    for candidate in eligible[j]:
                        chosen = self.victims(j, candidate)
                        if chosen is None:
                            continue
                        for r in chosen:
                            if not policy.is_victim(pool[r]):
                                break
                            retouch.add(engine.preempt(r))
                        if placement.fits(j, candidate):
                            part = candidate
                        break
                if part < 0:
                    continue
                engine.start(j, part)
                retouch.add(key)
                queues.push_next(key, i, cursor)
            if not budget:
                break
        if retouch:
            self._compact()
            for key in retouch:
                queues.touch(key)
            if policy.dynamic:
                queues.touch_all()
