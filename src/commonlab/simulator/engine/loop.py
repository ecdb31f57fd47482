"""The event loop: arrivals in submit order, completions from the run table's heap, the
policy's ticks and the backfill timer; after every event that changed something, the main
pass, and at every backfill interval the reclaim and backfill passes. A backfill pass is
skipped when the last one started nothing and nothing changed since (see `_unchanged`)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from commonlab.simulator.engine.backfill import Backfill
from commonlab.simulator.engine.core import Engine, EngineSettings
from commonlab.simulator.engine.main_pass import MainPass
from commonlab.simulator.engine.policy import Policy, State
from commonlab.simulator.engine.preemption import Preemption
from commonlab.simulator.engine.runs import Outcome

if TYPE_CHECKING:
    from commonlab.simulator.inputs import Partition
    from commonlab.simulator.workload import Workload

__all__ = ["simulate"]


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
    requeue or Kueue's eviction) as a new run numbered from len(workload). It resumes from
    its last checkpoint when the policy has `checkpoint_s` (plus `restart_s` to restore it),
    losing only the accelerator-time since; otherwise it restarts from the beginning and the
    whole cut run is lost (Runs.cut)."""
    state = State(workload, parts, eligible, entitled)
    keys = policy.bind(state)
    engine = Engine(workload, parts, eligible, policy, state, keys, settings)
    preemption = Preemption(engine) if policy.preempts else None
    reclaim_pass = preemption.run if preemption else None
    main_pass = MainPass(engine).run
    backfill = Backfill(engine)
    backfill_pass = backfill.run
    runs, queues, placement = engine.runs, engine.queues, engine.placement
    submit = workload.submit.tolist()
    completions, running, key_of = runs.completions, runs.running, runs.key
    pool, size = runs.pool, runs.size
    pool_waiting, pool_queued = state.pool_waiting, state.pool_queued
    finish, touch, arrive = engine.finish, queues.touch, queues.arrive
    n = len(workload)

    dynamic = policy.dynamic
    backfills = policy.backfill
    tick = policy.tick
    next_tick = tick if tick else math.inf
    interval = settings.backfill_interval if backfills or preemption else math.inf
    next_backfill = interval
    ticks = 0
    # What the engine had seen after the last backfill pass that started nothing (None
    # after one that started something).
    fruitless: tuple | None = None
    arrival = 0
    done = 0
    report_every = max(1, n // 200)
    events = 0
    # `while True` on purpose: CPython 3.11 specialises a function's bytecode only after
    # calls or unconditional backward jumps, and this function is called once; a loop that
    # only jumps back conditionally would run unspecialised (about 15% slower overall).
    while True:
        if not (arrival < n or completions or queues.total):
            break
        t_arrival = submit[arrival] if arrival < n else math.inf
        t_end = completions[0][0] if completions else math.inf
        now = min(t_arrival, t_end)
        if queues.total:
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
            pool_waiting[pool[j]] += 1
            pool_queued[pool[j]] += size[j]
            arrive(j, key_of[j])
            changed = True
        if now >= next_tick:
            policy.on_tick(now)
            queues.rerank()
            next_tick = now + tick
            ticks += 1
            changed = True
        if changed and queues.total and placement.free_total:
            main_pass()
        if now >= next_backfill:
            if queues.total and reclaim_pass:
                reclaim_pass()
            if queues.total and placement.free_total and backfills:
                seen = _unchanged(engine, arrival, ticks)
                if seen != fruitless:
                    backfill_pass()
                    fruitless = seen if engine.changes == seen[0] else None
            next_backfill = now + interval
        elif not queues.total:
            # Nothing waits: the next backfill pass comes one interval after work arrives.
            next_backfill = max(next_backfill, now + interval)
            next_tick = max(next_tick, now + tick) if tick else math.inf
    if progress:
        progress(done)
    return runs.outcome(events=events, backfilled=backfill.backfilled)


def _unchanged(engine: Engine, arrivals: int, ticks: int) -> tuple:
    """What a backfill pass's outcome depends on, as counts: runs started, ended or
    preempted, arrivals, policy ticks (which may re-rank the queues), and the policy's caps
    (its plan at a reclaim pass may change them without a tick). When these are as they
    were after a pass that started nothing, the next pass starts nothing either: the queues
    are in the same order (priorities change only at ticks, or with running work) and
    capacity is as it was, the reservation holds (the run it waits for has not ended) and
    time only came closer to it, so no job that did not fit before it fits now; the
    skipped pass would only have kept the same reservation."""
    caps = engine.policy.caps
    return (engine.changes, arrivals, ticks, tuple(caps) if caps is not None else None)
