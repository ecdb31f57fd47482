"""The simulator's engine as it was before issue 14 split it into parts (one `simulate` with
its passes as closures), kept only as the baseline `bench/simulator_bench.py speed --compare`
runs beside the split engine in the same process: same workload, same policies. Not used by
the package; delete it once the comparison is no longer wanted."""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from commonlab.simulator.inputs import Partition
    from commonlab.simulator.workload import Workload

__all__ = ["EngineSettings", "Outcome", "Policy", "State", "simulate"]


@dataclass(frozen=True)
class EngineSettings:
    """main_depth: jobs the main pass examines per event (Slurm's default_queue_depth);
    backfill_interval: seconds between backfill passes (Slurm's bf_interval);
    backfill_window: jobs a backfill pass examines (Slurm's bf_max_job_test is 500)."""

    main_depth: int = 100
    backfill_interval: float = 30.0
    backfill_window: int = 100
    # Jobs a reclaim pass (every backfill_interval, for policies that preempt) may start by
    # preemption, and the interconnect domains per partition it examines for one job.
    reclaim_depth: int = 100
    reclaim_domains: int = 64
    # With more queues than this (and priorities that change only at a tick), a backfill
    # pass reads queue heads lazily from the ranked heap instead of scanning every queue.
    scan_queues: int = 64


class Policy(ABC):
    """What a scheduling policy decides: which queue a job waits in (`queue_keys`) and the
    priority of a queue's head job. Within one queue, jobs run in the order they were queued
    (`State.queued_at`), so a later job must never outrank an earlier one of the same queue.
    Higher priority goes first. A policy that preempts also says which pools may reclaim
    capacity and which pools' running jobs may be preempted for them."""

    name = "policy"
    backfill = True
    # Seconds between `on_tick` calls while jobs wait (None: never).
    tick: float | None = None
    # True when priorities depend on running work, so a start or end re-ranks the queue.
    dynamic = False
    # True when the policy reclaims capacity by preempting running jobs (see `reclaimers`).
    preempts = False

    @abstractmethod
    def bind(self, state: State) -> np.ndarray:
        """Called once before the run; returns the queue key of every job. Every key must
        hold jobs of one pool when the policy preempts."""

    @abstractmethod
    def priority(self, key: int, job: int) -> float:
        """The priority of `job`, the head of queue `key` (higher goes first)."""

    def on_tick(self, now: float) -> None:  # noqa: B027 - most policies need no tick
        """Periodic recomputation (fair share, the share controller)."""

    def reclaimers(self) -> list[int]:
        """Pools with work waiting that may preempt others' jobs now, first served first."""
        return []

    def may_reclaim(self, pool: int, size: int) -> bool:
        """Whether `pool` may preempt others' jobs to start a job of `size` accelerators."""
        return False

    def is_victim(self, pool: int) -> bool:
        """Whether a running job of `pool` may be preempted now."""
        return False


@dataclass
class Outcome:
    """What happened to every job (its last run, for a job that was preempted), plus engine
    counters and the runs that preemption cut short."""

    start: np.ndarray
    end: np.ndarray
    partition: np.ndarray
    events: int
    backfilled: int
    preemptions: int = 0
    lost_accelerator_seconds: float = 0.0
    # Per job: seconds it ran before being preempted (0 for most), so that its queueing
    # delay is start - submit - preempted_seconds.
    preempted_seconds: np.ndarray | None = None
    # The runs preemption cut short: job index, start, end (each row one preemption).
    cut_job: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cut_start: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cut_end: np.ndarray = field(default_factory=lambda: np.zeros(0))


class State:
    """The facility as the engine runs it. Policies read (never write) its public fields."""

    def __init__(
        self,
        workload: Workload,
        parts: Sequence[Partition],
        eligible: Sequence[tuple[int, ...]],
        shares: Sequence[float],
    ) -> None:
        self.workload = workload
        self.parts = list(parts)
        self.eligible = eligible
        self.entitled = list(shares)
        self.now = 0.0
        self.capacity = sum(p.size for p in parts)
        n_pools, n_tenants = len(workload.pools), len(workload.tenants)
        self.pool_running = [0] * n_pools
        self.pool_waiting = [0] * n_pools
        # Accelerators asked for by each pool's waiting jobs.
        self.pool_queued = [0] * n_pools
        # When each job (or each re-queued run of a preempted job, numbered from
        # len(workload)) joined its queue: its submit time, or when it was preempted.
        self.queued_at: list[float] = workload.submit.tolist()
        # Delivered accelerator-seconds per tenant, integrated lazily at starts and ends.
        self._tenant_rate = [0] * n_tenants
        self._tenant_since = [0.0] * n_tenants
        self._tenant_used = [0.0] * n_tenants

    def tenant_usage(self) -> list[float]:
        """Accelerator-seconds each tenant has received up to now (running jobs included)."""
        now = self.now
        for t, rate in enumerate(self._tenant_rate):
            if rate:
                self._tenant_used[t] += rate * (now - self._tenant_since[t])
            self._tenant_since[t] = now
        return list(self._tenant_used)

    def _account(self, tenant: int, delta: int) -> None:
        now = self.now
        self._tenant_used[tenant] += self._tenant_rate[tenant] * (now - self._tenant_since[tenant])
        self._tenant_since[tenant] = now
        self._tenant_rate[tenant] += delta


def _sorted_heap(heap: list) -> Iterator:
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


def simulate(
    workload: Workload,
    parts: Sequence[Partition],
    eligible: Sequence[tuple[int, ...]],
    policy: Policy,
    *,
    entitled: Sequence[float],
    settings: EngineSettings = EngineSettings(),
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Run `workload` on `parts` under `policy`; every job in the workload must fit some
    eligible partition (see workload.bind_classes).

    A preempted job goes back to its queue at the back (its age restarts, as after Slurm's
    requeue or Kueue's eviction) as a new run numbered from len(workload); it restarts from
    the beginning, so the accelerator-time of the cut run is lost."""
    state = State(workload, parts, eligible, entitled)
    keys = policy.bind(state)
    n = len(workload)
    submit = workload.submit.tolist()
    # Per run (a job, or a re-queued run of a preempted job): these lists grow on preemption.
    runtime = workload.runtime.tolist()
    size = workload.accelerators.tolist()
    tenant = workload.tenant.tolist()
    pool = workload.pool.tolist()
    job_eligible = [eligible[c] for c in workload.class_set.tolist()]
    one_domain = workload.one_domain.tolist()
    key_of = keys.tolist()
    origin = list(range(n))
    n_keys = int(keys.max()) + 1 if n else 1
    priority = policy.priority
    queued_at = state.queued_at

    start_time = [math.nan] * n
    end_time = [math.nan] * n
    placed = [-1] * n
    running = bytearray(n)
    last_run = list(range(n))

    n_parts = len(parts)
    n_pools = len(workload.pools)
    free = [p.size for p in parts]
    multi = [len(p.domain_sizes) > 1 for p in parts]
    dfree = [list(p.domain_sizes) for p in parts]
    buckets: list[list[set[int]]] = []
    top = [p.largest_domain for p in parts]
    for p in parts:
        levels: list[set[int]] = [set() for _ in range(p.largest_domain + 1)]
        for d, cap in enumerate(p.domain_sizes):
            levels[cap].add(d)
        buckets.append(levels)
    allocation: dict[int, tuple[tuple[int, int], ...] | None] = {}
    starts_on = [0] * len(parts)

    # Only for policies that preempt: running runs per (partition, pool) in start order,
    # accelerators in use per (partition, pool), and running runs per domain.
    tracking = policy.preempts
    run_lists = [[[] for _ in range(n_pools)] for _ in range(n_parts)] if tracking else []
    used_on = [[0] * n_pools for _ in range(n_parts)] if tracking else []
    domain_runs = (
        [[set() for _ in p.domain_sizes] if m else [] for p, m in zip(parts, multi, strict=True)]
        if tracking
        else []
    )
    key_pools: list[list[int]] = [[] for _ in range(n_pools)]
    if tracking and n:
        first = np.full(n_keys, -1, dtype=np.int64)
        first[keys[::-1]] = workload.pool[::-1]
        if np.any(first[keys] != workload.pool):
            raise ValueError(f"policy {policy.name} preempts but a queue holds several pools")
        for key, p in enumerate(first.tolist()):
            if p >= 0:
                key_pools[p].append(key)
    cut_job: list[int] = []
    cut_start: list[float] = []
    cut_end: list[float] = []
    preempted_seconds = np.zeros(n)

    queue: list[list[int]] = [[] for _ in range(n_keys)]
    head = [0] * n_keys
    version = [0] * n_keys
    waiting = bytearray(n)
    key_heap: list[tuple[float, float, int, int]] = []
    completions: list[tuple[float, int]] = []
    queued_total = 0
    free_total = state.capacity
    counters = {"backfilled": 0, "events": 0, "preemptions": 0}
    lost = [0.0]

    def touch(key: int) -> None:
        """Re-rank queue `key` after its head or its priority changed."""
        q, h = queue[key], head[key]
        while h < len(q) and not waiting[q[h]]:
            h += 1
        head[key] = h
        if h > 4096 and h * 2 > len(q):
            del q[:h]
            head[key] = h = 0
        version[key] += 1
        if h < len(q):
            j = q[h]
            heapq.heappush(key_heap, (-priority(key, j), queued_at[j], version[key], key))

    def best_domain(p: int, need: int) -> int:
        levels = buckets[p]
        for k in range(need, top[p] + 1):
            if levels[k]:
                return next(iter(levels[k]))
        return -1

    def fits(j: int, p: int) -> bool:
        need = size[j]
        if free[p] < need:
            return False
        if one_domain[j] and multi[p]:
            levels = buckets[p]
            t = top[p]
            while t and not levels[t]:
                t -= 1
            top[p] = t
            return t >= need
        return True

    def move(p: int, d: int, delta: int) -> None:
        levels = buckets[p]
        old = dfree[p][d]
        levels[old].discard(d)
        dfree[p][d] = old + delta
        levels[old + delta].add(d)
        if old + delta > top[p]:
            top[p] = old + delta

    def start(j: int, p: int) -> None:
        nonlocal free_total, queued_total
        need = size[j]
        if multi[p]:
            if one_domain[j]:
                d = best_domain(p, need)
                move(p, d, -need)
                allocation[j] = ((d, need),)
            else:
                # Pack: take from the fullest domains first, keeping whole domains free for
                # jobs that need one.
                taken = []
                remaining = need
                levels = buckets[p]
                for k in range(1, top[p] + 1):
                    while levels[k] and remaining:
                        d = next(iter(levels[k]))
                        take = min(k, remaining)
                        move(p, d, -take)
                        taken.append((d, take))
                        remaining -= take
                    if not remaining:
                        break
                allocation[j] = tuple(taken)
            if tracking:
                for d, _ in allocation[j]:
                    domain_runs[p][d].add(j)
        free[p] -= need
        free_total -= need
        starts_on[p] += 1
        waiting[j] = 0
        queued_total -= 1
        now = state.now
        start_time[j] = now
        placed[j] = p
        running[j] = 1
        state.pool_running[pool[j]] += need
        state.pool_waiting[pool[j]] -= 1
        state.pool_queued[pool[j]] -= need
        state._account(tenant[j], need)
        if tracking:
            run_lists[p][pool[j]].append(j)
            used_on[p][pool[j]] += need
        heapq.heappush(completions, (now + runtime[j], j))

    def release(j: int) -> None:
        nonlocal free_total
        p = placed[j]
        need = size[j]
        if multi[p]:
            for d, take in allocation.pop(j):
                move(p, d, take)
                if tracking:
                    domain_runs[p][d].discard(j)
        free[p] += need
        free_total += need
        running[j] = 0
        state.pool_running[pool[j]] -= need
        state._account(tenant[j], -need)
        if tracking:
            used_on[p][pool[j]] -= need

    def finish(j: int) -> None:
        release(j)
        end_time[j] = state.now

    def preempt(j: int) -> int:
        """Stop run j and queue a fresh run of its job at the back; returns its key."""
        nonlocal queued_total
        now = state.now
        release(j)
        job = origin[j]
        cut_job.append(job)
        cut_start.append(start_time[j])
        cut_end.append(now)
        preempted_seconds[job] += now - start_time[j]
        lost[0] += size[j] * (now - start_time[j])
        counters["preemptions"] += 1
        r = len(origin)
        for column in (runtime, size, tenant, pool, job_eligible, one_domain, key_of):
            column.append(column[j])
        origin.append(job)
        queued_at.append(now)
        start_time.append(math.nan)
        end_time.append(math.nan)
        placed.append(-1)
        running.append(0)
        waiting.append(1)
        last_run[job] = r
        queued_total += 1
        state.pool_waiting[pool[r]] += 1
        state.pool_queued[pool[r]] += size[r]
        queue[key_of[r]].append(r)
        return key_of[r]

    def choose(j: int, blocked: set[int] | None) -> int:
        """Best-fit partition for job j now (least free that fits), or -1."""
        best, best_free = -1, 1 << 62
        for p in job_eligible[j]:
            if blocked and p in blocked:
                continue
            if free[p] < best_free and fits(j, p):
                best, best_free = p, free[p]
        return best

    depth = settings.main_depth

    def main_pass() -> None:
        blocked: set[int] = set()
        held = []
        # Jobs behind a blocked one in its own queue, as (priority, queued, key, index).
        behind: list[tuple[float, float, int, int]] = []
        tried = 0
        while (key_heap or behind) and tried < depth and free_total:
            if behind and (not key_heap or behind[0][:2] < key_heap[0][:2]):
                _, _, key, i = heapq.heappop(behind)
                entry = None
            else:
                entry = heapq.heappop(key_heap)
                key = entry[3]
                if entry[2] != version[key]:
                    continue
                i = head[key]
            q = queue[key]
            j = q[i]
            tried += 1
            p = choose(j, blocked)
            if p >= 0:
                start(j, p)
                if entry is not None:
                    touch(key)
                else:
                    _behind(key, i, behind)
                continue
            # j keeps its place: lower-priority jobs may not take the partitions it waits for,
            # but may take others (Slurm's main scheduler does the same per partition).
            if entry is not None:
                held.append(entry)
            blocked.update(job_eligible[j])
            if len(blocked) == n_parts or not any(
                free[p] for p in range(n_parts) if p not in blocked
            ):
                break
            _behind(key, i, behind)
        for entry in held:
            heapq.heappush(key_heap, entry)

    def _behind(key: int, i: int, behind: list) -> None:
        q = queue[key]
        i += 1
        while i < len(q) and not waiting[q[i]]:
            i += 1
        if i < len(q):
            heapq.heappush(behind, (-priority(key, q[i]), queued_at[q[i]], key, i))

    window = settings.backfill_window
    # The last EASY reservation: job, partition, time, spare accelerators, and how many
    # starts its partition had seen (any later start there outdates it).
    cache: list = [-1, -1, math.inf, -1, -1]

    def shadow(j: int) -> tuple[float, int, int]:
        """EASY reservation for j: when it can start at the latest (running jobs ending at
        their recorded runtime), on which partition, and how many accelerators of that
        partition are spare then (-1 when j needs one domain: no spare is lent)."""
        need = size[j]
        domain = one_domain[j]
        mine = set(job_eligible[j])
        avail = {p: free[p] for p in mine}
        davail: dict[tuple[int, int], int] = {}
        for end, k in _sorted_heap(completions):
            if not running[k]:
                continue
            p = placed[k]
            if p not in mine:
                continue
            avail[p] += size[k]
            if domain and multi[p]:
                for d, take in allocation[k]:
                    got = davail.get((p, d), dfree[p][d]) + take
                    davail[(p, d)] = got
                    if got >= need:
                        return end, p, -1
            elif avail[p] >= need:
                return end, p, (-1 if domain else avail[p] - need)
        return math.inf, -1, -1

    def backfill_pass() -> None:
        cursor: list[tuple[float, float, int, int]] = []
        if dynamic or n_keys <= settings.scan_queues:
            for key in range(n_keys):
                if head[key] < len(queue[key]):
                    j = queue[key][head[key]]
                    cursor.append((-priority(key, j), queued_at[j], key, head[key]))
            heapq.heapify(cursor)
            heads: Iterator = iter(())
        else:
            # Many queues whose priorities change only at a tick: read their heads from the
            # ranked heap lazily rather than scanning every queue.
            heads = (e for e in _sorted_heap(key_heap) if e[2] == version[e[3]])
        pending = next(heads, None)
        examined = 0
        reserved_part, reserved_until, spare = -1, math.inf, -1
        reserved, reserved_job = False, -1
        touched = set()
        now = state.now
        while (cursor or pending) and examined < window and free_total:
            if pending is not None and (not cursor or pending[:2] < cursor[0][:2]):
                key, i = pending[3], head[pending[3]]
                pending = next(heads, None)
            else:
                _, _, key, i = heapq.heappop(cursor)
            q = queue[key]
            j = q[i]
            nxt = i + 1
            while nxt < len(q) and not waiting[q[nxt]]:
                nxt += 1
            if nxt < len(q):
                k = q[nxt]
                heapq.heappush(cursor, (-priority(key, k), queued_at[k], key, nxt))
            if not waiting[j]:
                continue
            examined += 1
            if not reserved:
                p = choose(j, None)
                if p >= 0:
                    start(j, p)
                    touched.add(key)
                    continue
                if cache[0] == j and cache[4] == starts_on[cache[1]] and cache[2] > now:
                    # Nothing started on its partition since: the reservation holds.
                    reserved_part, reserved_until, spare = cache[1], cache[2], cache[3]
                else:
                    reserved_until, reserved_part, spare = shadow(j)
                reserved = True
                reserved_job = j
                continue
            # Prefer partitions the reservation does not need; else fit around it.
            p = choose(j, {reserved_part})
            if p < 0 and reserved_part in job_eligible[j] and fits(j, reserved_part):
                if now + runtime[j] <= reserved_until:
                    p = reserved_part
                elif not one_domain[j] and size[j] <= spare:
                    spare -= size[j]
                    p = reserved_part
            if p >= 0:
                start(j, p)
                counters["backfilled"] += 1
                touched.add(key)
        if reserved and reserved_part >= 0:
            cache[:] = [
                reserved_job,
                reserved_part,
                reserved_until,
                spare,
                starts_on[reserved_part],
            ]
        for key in touched:
            touch(key)

    def victims_for(j: int, p: int) -> list[int] | None:
        """Runs to preempt, newest first, so that j fits on partition p; None if the pools
        that may be preempted do not hold enough there."""
        need = size[j]
        if one_domain[j] and multi[p]:
            # The domains with the most free accelerators first; a bounded scan.
            scanned = 0
            levels = buckets[p]
            for k in range(top[p], -1, -1):
                for d in levels[k]:
                    candidates = [r for r in domain_runs[p][d] if policy.is_victim(pool[r])]
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
                    if scanned >= settings.reclaim_domains:
                        return None
            return None
        if free[p] + sum(used_on[p][v] for v in range(n_pools) if policy.is_victim(v)) < need:
            return None
        candidates = []
        for v in range(n_pools):
            if not used_on[p][v] or not policy.is_victim(v):
                continue
            runs = run_lists[p][v]
            got = 0
            for r in reversed(runs):
                if running[r] and placed[r] == p:
                    candidates.append(r)
                    got += size[r]
                    if got >= need:
                        break
        candidates.sort(key=start_time.__getitem__, reverse=True)
        chosen, have = [], free[p]
        for r in candidates:
            chosen.append(r)
            have += size[r]
            if have >= need:
                return chosen
        return None

    def compact(p: int, v: int) -> None:
        runs = run_lists[p][v]
        if len(runs) > 64 and len(runs) > 2 * used_on[p][v]:
            run_lists[p][v] = [r for r in runs if running[r] and placed[r] == p]

    def reclaim_pass() -> None:
        """Start waiting jobs of pools that may reclaim capacity, preempting the newest runs
        of pools that may be preempted where nothing is free (Kueue's reclaimWithinCohort)."""
        budget = settings.reclaim_depth
        retouch: set[int] = set()
        for p_pool in policy.reclaimers():
            cursor = []
            for key in key_pools[p_pool]:
                h = head[key]
                q = queue[key]
                while h < len(q) and not waiting[q[h]]:
                    h += 1
                if h < len(q):
                    cursor.append((-priority(key, q[h]), queued_at[q[h]], key, h))
            heapq.heapify(cursor)
            while cursor and budget:
                _, _, key, i = heapq.heappop(cursor)
                q = queue[key]
                j = q[i]
                if not policy.may_reclaim(p_pool, size[j]):
                    break
                budget -= 1
                part = choose(j, None)
                if part < 0:
                    for candidate in job_eligible[j]:
                        chosen = victims_for(j, candidate)
                        if chosen is None:
                            continue
                        for r in chosen:
                            if not policy.is_victim(pool[r]):
                                break
                            retouch.add(preempt(r))
                        if fits(j, candidate):
                            part = candidate
                        break
                if part < 0:
                    continue
                start(j, part)
                retouch.add(key)
                nxt = i + 1
                while nxt < len(q) and not waiting[q[nxt]]:
                    nxt += 1
                if nxt < len(q):
                    k = q[nxt]
                    heapq.heappush(cursor, (-priority(key, k), queued_at[k], key, nxt))
            if not budget:
                break
        if retouch:
            for p in range(n_parts):
                for v in range(n_pools):
                    compact(p, v)
            for key in retouch:
                touch(key)
            if policy.dynamic:
                for key in range(n_keys):
                    touch(key)

    dynamic = policy.dynamic
    tick = policy.tick
    next_tick = tick if tick else math.inf
    interval = settings.backfill_interval if policy.backfill or tracking else math.inf
    next_backfill = interval
    arrival = 0
    done = 0
    report_every = max(1, n // 200)
    dynamic = policy.dynamic
    events = 0
    while arrival < n or completions or queued_total:
        t_arrival = submit[arrival] if arrival < n else math.inf
        t_end = completions[0][0] if completions else math.inf
        now = min(t_arrival, t_end)
        if queued_total:
            now = min(now, next_tick, next_backfill)
        if now == math.inf:
            break
        state.now = now
        changed = False
        while completions and completions[0][0] <= now:
            _, j = heapq.heappop(completions)
            if not running[j]:
                continue  # preempted: this run never ends
            finish(j)
            done += 1
            events += 1
            changed = True
            if dynamic:
                touch(key_of[j])
            if progress and done % report_every == 0:
                progress(done)
        while arrival < n and submit[arrival] <= now:
            j = arrival
            arrival += 1
            events += 1
            waiting[j] = 1
            queued_total += 1
            state.pool_waiting[pool[j]] += 1
            state.pool_queued[pool[j]] += size[j]
            key = key_of[j]
            queue[key].append(j)
            if head[key] == len(queue[key]) - 1 or not waiting[queue[key][head[key]]]:
                touch(key)
            changed = True
        if now >= next_tick:
            policy.on_tick(now)
            key_heap.clear()
            for key in range(n_keys):
                touch(key)
            next_tick = now + tick
            changed = True
        if changed and queued_total and free_total:
            main_pass()
        if now >= next_backfill:
            if queued_total and tracking:
                reclaim_pass()
            if queued_total and free_total and policy.backfill:
                backfill_pass()
            next_backfill = now + interval
        elif not queued_total:
            # Nothing waits: the next backfill pass comes one interval after work arrives.
            next_backfill = max(next_backfill, now + interval)
            next_tick = max(next_tick, now + tick) if tick else math.inf
    if progress:
        progress(done)
    final = np.array(last_run, dtype=np.int64)
    return Outcome(
        start=np.array(start_time)[final],
        end=np.array(end_time)[final],
        partition=np.array(placed, dtype=np.int32)[final],
        events=events,
        backfilled=counters["backfilled"],
        preemptions=counters["preemptions"],
        lost_accelerator_seconds=lost[0],
        preempted_seconds=preempted_seconds,
        cut_job=np.array(cut_job, dtype=np.int64),
        cut_start=np.array(cut_start),
        cut_end=np.array(cut_end),
    )
