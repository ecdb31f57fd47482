"""The discrete-event core: arrivals in submit order, completions in a heap, gang scheduling
on per-partition and per-domain free counts, a bounded main pass at every event and a
periodic EASY backfill pass. Policies only order the queue (see policies.py)."""

from __future__ import annotations

import heapq
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from commonlab.simulator.facility import Partition

if TYPE_CHECKING:
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


class Policy(ABC):
    """What a scheduling policy decides: which queue a job waits in (`queue_keys`) and the
    priority of a queue's head job. Within one queue, jobs run in submit order, so a later
    job must never outrank an earlier one of the same queue. Higher priority goes first."""

    name = "policy"
    backfill = True
    # Seconds between `on_tick` calls while jobs wait (None: never).
    tick: float | None = None
    # True when priorities depend on running work, so a start or end re-ranks the queue.
    dynamic = False

    @abstractmethod
    def bind(self, state: State) -> np.ndarray:
        """Called once before the run; returns the queue key of every job."""

    @abstractmethod
    def priority(self, key: int, job: int) -> float:
        """The priority of `job`, the head of queue `key` (higher goes first)."""

    def on_tick(self, now: float) -> None:  # noqa: B027 - most policies need no tick
        """Periodic recomputation (fair share, the share controller)."""


@dataclass
class Outcome:
    """What happened to every job, plus engine counters."""

    start: np.ndarray
    end: np.ndarray
    partition: np.ndarray
    events: int
    backfilled: int
    # No policy preempts yet; the fields are here so reports have one shape when one does.
    preemptions: int = 0
    lost_accelerator_seconds: float = 0.0


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
    eligible partition (see workload.bind_classes)."""
    state = State(workload, parts, eligible, entitled)
    keys = policy.bind(state)
    n = len(workload)
    submit = workload.submit.tolist()
    runtime = workload.runtime.tolist()
    size = workload.accelerators.tolist()
    tenant = workload.tenant.tolist()
    pool = workload.pool.tolist()
    job_eligible = [eligible[c] for c in workload.class_set.tolist()]
    one_domain = workload.one_domain.tolist()
    key_of = keys.tolist()
    n_keys = int(keys.max()) + 1 if n else 1
    priority = policy.priority

    start_time = [math.nan] * n
    end_time = [math.nan] * n
    placed = [-1] * n

    n_parts = len(parts)
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

    queue: list[list[int]] = [[] for _ in range(n_keys)]
    head = [0] * n_keys
    version = [0] * n_keys
    waiting = bytearray(n)
    key_heap: list[tuple[float, float, int, int]] = []
    completions: list[tuple[float, int]] = []
    queued_total = 0
    free_total = state.capacity
    counters = {"backfilled": 0, "events": 0}

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
            heapq.heappush(key_heap, (-priority(key, j), submit[j], version[key], key))

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
        free[p] -= need
        free_total -= need
        waiting[j] = 0
        queued_total -= 1
        now = state.now
        start_time[j] = now
        placed[j] = p
        state.pool_running[pool[j]] += need
        state.pool_waiting[pool[j]] -= 1
        state._account(tenant[j], need)
        heapq.heappush(completions, (now + runtime[j], j))

    def finish(j: int) -> None:
        nonlocal free_total
        p = placed[j]
        need = size[j]
        if multi[p]:
            for d, take in allocation.pop(j):
                move(p, d, take)
        free[p] += need
        free_total += need
        end_time[j] = state.now
        state.pool_running[pool[j]] -= need
        state._account(tenant[j], -need)

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
        # Jobs behind a blocked one in its own queue, as (priority, submit, key, index).
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
            heapq.heappush(behind, (-priority(key, q[i]), submit[q[i]], key, i))

    window = settings.backfill_window

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
        nonlocal free_total
        cursor: list[tuple[float, float, int, int]] = []
        for key in range(n_keys):
            if head[key] < len(queue[key]):
                j = queue[key][head[key]]
                cursor.append((-priority(key, j), submit[j], key, head[key]))
        heapq.heapify(cursor)
        examined = 0
        reserved_part, reserved_until, spare = -1, math.inf, -1
        reserved = False
        touched = set()
        now = state.now
        while cursor and examined < window and free_total:
            _, _, key, i = heapq.heappop(cursor)
            q = queue[key]
            j = q[i]
            nxt = i + 1
            while nxt < len(q) and not waiting[q[nxt]]:
                nxt += 1
            if nxt < len(q):
                k = q[nxt]
                heapq.heappush(cursor, (-priority(key, k), submit[k], key, nxt))
            if not waiting[j]:
                continue
            examined += 1
            if not reserved:
                p = choose(j, None)
                if p >= 0:
                    start(j, p)
                    touched.add(key)
                    continue
                reserved_until, reserved_part, spare = shadow(j)
                reserved = True
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
        for key in touched:
            touch(key)

    tick = policy.tick
    next_tick = tick if tick else math.inf
    interval = settings.backfill_interval if policy.backfill else math.inf
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
            if queued_total and free_total:
                backfill_pass()
            next_backfill = now + interval
        elif not queued_total:
            # Nothing waits: the next backfill pass comes one interval after work arrives.
            next_backfill = max(next_backfill, now + interval)
            next_tick = max(next_tick, now + tick) if tick else math.inf
    if progress:
        progress(done)
    return Outcome(
        start=np.array(start_time),
        end=np.array(end_time),
        partition=np.array(placed, dtype=np.int32),
        events=events,
        backfilled=counters["backfilled"],
    )
