"""The share controller: compares what each pool received with what its entitlement gave it
over a window and moves each pool's fair-share weight in bounded steps (`next_weights`), and
plans caps and bounded reclaim by preemption that hold shares where weights cannot
(`plan_reclaim`). Pure, plain data in and out; production calls it (accounts.py: Slurm
`Fairshare`, `GrpTRES` and `scontrol requeue` per member-state account), and the simulator
runs the same code (simulator/policies.py)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from commonlab.errors import InvalidInput

__all__ = [
    "RECLAIM",
    "STEERING",
    "ControllerSettings",
    "ReclaimPlan",
    "ReclaimSettings",
    "Running",
    "fair_split",
    "next_weights",
    "pins",
    "plan_reclaim",
]


@dataclass(frozen=True)
class ControllerSettings:
    """gain: how far one window's relative error moves a weight (log scale);
    max_step: largest relative change of a weight in one window (0.25 = ±25%);
    floor, ceiling: weights stay within [floor, ceiling] x the entitled share;
    deadband: an error smaller than this (points of what the pools received together) moves
    nothing but a slow return toward the entitlement, so a pool on target keeps its weight
    and the scheduler's order is left alone;
    relax: the fraction of the way back to the entitlement a weight moves in a window where
    its pool is within the deadband or has no work waiting."""

    gain: float = 1.0
    max_step: float = 0.25
    floor: float = 0.2
    ceiling: float = 5.0
    deadband: float = 0.0
    relax: float = 1.0

    def __post_init__(self) -> None:
        if not (
            self.gain > 0
            and 0 < self.max_step < 1
            and 0 < self.floor <= 1 <= self.ceiling
            and 0 <= self.deadband < 1
            and 0 <= self.relax <= 1
        ):
            raise ValueError(
                "controller settings need gain > 0, 0 < max_step < 1, "
                "0 < floor <= 1 <= ceiling, 0 <= deadband < 1 and 0 <= relax <= 1"
            )


def fair_split(
    total: float, *, entitled: Mapping[str, float], demand: Mapping[str, float]
) -> dict[str, float]:
    """Weighted max-min fair split of `total` (accelerators) among pools asking for
    `demand` (running plus waiting): each pool gets min(demand, level x entitled share), the
    level set so the parts add up to `total` (or every pool gets its demand). What a pool
    does not ask for goes to the others in proportion to their entitlements."""
    pools = [p for p in entitled if entitled[p] > 0]
    result = {p: 0.0 for p in entitled}
    remaining = total
    active = sorted(pools, key=lambda p: demand.get(p, 0.0) / entitled[p])
    weight = sum(entitled[p] for p in active)
    for i, pool in enumerate(active):
        level = remaining / weight if weight > 0 else 0.0
        want = demand.get(pool, 0.0)
        if want <= level * entitled[pool]:
            result[pool] = want
            remaining -= want
            weight -= entitled[pool]
            continue
        for rest in active[i:]:
            result[rest] = level * entitled[rest]
        break
    return result


def next_weights(
    *,
    entitled: Mapping[str, float],
    delivered: Mapping[str, float],
    weights: Mapping[str, float],
    waiting: Mapping[str, bool],
    fair: Mapping[str, float] | None = None,
    settings: ControllerSettings = ControllerSettings(),
) -> dict[str, float]:
    """New weight per pool after one window.

    `entitled`: share of capacity per pool (sums to 1); `delivered`: accelerator-seconds
    each pool received in the window (or while it had work waiting); `weights`: current
    weights; `waiting`: whether the pool had work waiting in the window. `fair`: the
    accelerator-seconds each pool's entitlement gave it over the same time (see
    `fair_split`); without it, only pools with work waiting compete and each one's target
    is its entitlement renormalised over them, times what they received together. A pool
    without waiting work, or within the deadband, drifts back toward its entitlement (no
    wind-up)."""
    competing = [p for p in entitled if waiting.get(p)]
    got = sum(delivered.get(p, 0.0) for p in competing)
    share_sum = sum(entitled[p] for p in competing)
    low, high = math.log1p(-settings.max_step), math.log1p(settings.max_step)
    result: dict[str, float] = {}
    for pool, share in entitled.items():
        weight = weights.get(pool, share)
        if share <= 0:
            result[pool] = 0.0
            continue
        back = math.log(share / weight) if weight > 0 else high
        if fair is not None:
            target = fair.get(pool, 0.0)
        else:
            target = share / share_sum * got if pool in competing and got > 0 else 0.0
        error = target - delivered.get(pool, 0.0)
        if pool in competing and target > 0 and abs(error) > settings.deadband * got:
            step = settings.gain * error / target
        else:
            step = settings.relax * back
        step = min(high, max(low, step))
        moved = weight * math.exp(step)
        result[pool] = min(share * settings.ceiling, max(share * settings.floor, moved))
    return result


@dataclass(frozen=True)
class Running:
    """One running job as the reclaim plan sees it: `job` is whatever the caller names it by
    (a Slurm job id, a simulator run), `started` when this run started (seconds, any epoch
    shared with the other runs), `since_checkpoint` the seconds of work a preemption now
    would lose (the time since its last checkpoint; its whole run time without
    checkpoints)."""

    job: Hashable
    pool: str
    accelerators: int
    started: float
    since_checkpoint: float = 0.0


@dataclass(frozen=True)
class ReclaimSettings:
    """budget: at most this fraction of the capacity preempted per hour (0 turns preemption
    off; caps still apply);
    tolerance: a pool counts as under-served only when it holds less than its target by
    more than this fraction of what is delivered (points / 100), so noise preempts nothing;
    repay_s: a pool's credit (accelerator-seconds owed) is repaid over this many seconds:
    its target is its fair split plus credit / repay_s;
    repay_max: the repayment moves a target by at most this fraction of its fair split;
    caps: whether pools at or above their target may start more work while an under-served
    pool waits (Slurm GrpTRES on the member-state account);
    preempt_above: preemption reclaims only for a pool short of its target by more than
    this fraction of what is delivered; smaller shortfalls wait for running jobs to end
    under the caps (a preemption loses the work since the last checkpoint and a restart);
    turn_s: a run larger than the whole hourly budget may still be preempted, in an hour
    when nothing else was, once its pool has received the run's size times this many
    seconds beyond its fair split: large gangs take turns (`_turn_over`)."""

    budget: float = 0.05
    tolerance: float = 0.005
    preempt_above: float = 0.0
    repay_s: float = 86_400.0
    repay_max: float = 0.5
    caps: bool = True
    turn_s: float = 4 * 3_600.0

    def __post_init__(self) -> None:
        if not (
            0 <= self.budget <= 1
            and 0 <= self.tolerance < 1
            and self.repay_s > 0
            and 0 <= self.repay_max <= 1
            and 0 <= self.preempt_above < 1
            and self.turn_s > 0
        ):
            raise InvalidInput(
                "reclaim settings need 0 <= budget <= 1, 0 <= tolerance < 1, repay_s > 0, "
                "0 <= repay_max <= 1, 0 <= preempt_above < 1 and turn_s > 0"
            )


# commonlab's weight steps, in the simulator and in production: small steps, a deadband and a
# slow return (at 100,000 accelerators the eager defaults, ±25% a step, oscillated;
# docs/simulator.md).
STEERING = ControllerSettings(max_step=0.05, deadband=0.015, relax=0.1)
# commonlab's reclaim settings, in the simulator and in production (docs/simulator.md, "The
# policies": preempting only for a pool short by more than 10 points kept the quick
# sweep's overload-1.2 within 0.61 points and cost 1.1 points less utilisation than
# preempting at 2 points).
RECLAIM = ReclaimSettings(budget=0.25, preempt_above=0.10)


@dataclass(frozen=True)
class ReclaimPlan:
    """caps: per pool, the accelerators it may hold (None: no cap); a cap below what the
    pool holds lets its running jobs finish and starts none. preempt: the jobs to requeue,
    those that lose the least work first. reclaim_for: per under-served pool with work
    waiting, the accelerators of its waiting jobs (in queue order) the plan makes room
    for. targets: each pool's target in accelerators (its fair split of what is
    delivered, moved by its credit).
    under_served: the pools with work waiting below their targets, most under-served
    first."""

    caps: dict[str, int | None]
    preempt: list[Hashable]
    reclaim_for: dict[str, int]
    targets: dict[str, float] = field(default_factory=dict)
    under_served: list[str] = field(default_factory=list)


def plan_reclaim(
    *,
    capacity: int,
    entitled: Mapping[str, float],
    running: Sequence[Running],
    waiting: Mapping[str, Sequence[int]],
    credit: Mapping[str, float] | None = None,
    preempted_last_hour: float = 0.0,
    in_use: Mapping[str, float] | None = None,
    queued: Mapping[str, float] | None = None,
    settings: ReclaimSettings = ReclaimSettings(),
) -> ReclaimPlan:
    """Caps and preemptions that bring every pool with work waiting to its fair split.

    `capacity`: accelerators of the fleet; `entitled`: share per pool; `running`: the
    running jobs that may be preempted (all of them, or only the newest of each pool when
    `in_use` gives what each pool holds in all); `waiting`: per pool the accelerators of
    its waiting jobs in queue order; `credit`: per pool accelerator-seconds owed (+) or
    received beyond its fair split (-) so far (the weekly integral the metric measures);
    `preempted_last_hour`: accelerators preempted in the last hour, against the budget;
    `queued`: per pool the accelerators of all its waiting jobs, when `waiting` lists only
    the first of them.

    A pool's target is its water-filled fair split of what is delivered (`fair_split` over
    what each pool holds plus what it waits for), moved by its credit. A pool with work
    waiting that holds less than its target (by more than the tolerance) is under-served,
    and reclaims room for its waiting jobs in queue order up to its shortfall (a job that
    would overshoot by more than half its size waits: a gang larger than what the pool is
    owed does not displace others). While some under-served pool's next job fits its
    target so, every pool at or above its target is capped at it, so freed capacity goes
    to the under-served; otherwise there are no caps (work conservation: capping others
    for a job larger than its pool's whole target would idle the machine; with nobody
    under-served, nothing is capped). What free capacity does not cover, for pools short
    by more than `preempt_above`, is taken by preempting runs of pools above their targets,
    those that lose the least work first (the time since their last checkpoint; the newest
    among equals), never one that would leave its pool below its target, within the hourly
    budget; except a run larger than the whole budget whose pool has had its turn
    (`_turn_over`)."""
    if capacity <= 0:
        raise InvalidInput(f"capacity must be a positive number of accelerators, not {capacity}")
    unknown = {r.pool for r in running} | set(waiting) | set(credit or {})
    unknown |= set(in_use or {}) | set(queued or {})
    unknown -= set(entitled)
    if unknown:
        raise InvalidInput(f"pools without an entitlement: {', '.join(sorted(unknown))}")
    if any(r.accelerators <= 0 for r in running) or any(
        size <= 0 for sizes in waiting.values() for size in sizes
    ):
        raise InvalidInput("every running and waiting job needs at least one accelerator")
    credit = credit or {}
    if in_use is None:
        held = dict.fromkeys(entitled, 0.0)
        for r in running:
            held[r.pool] += r.accelerators
    else:
        held = {p: float(in_use.get(p, 0.0)) for p in entitled}
    if queued is None:
        asked = {p: float(sum(waiting.get(p, ()))) for p in entitled}
    else:
        asked = {p: float(queued.get(p, 0.0)) for p in entitled}
    delivered = sum(held.values())
    fair = fair_split(
        delivered, entitled=entitled, demand={p: held[p] + asked[p] for p in entitled}
    )
    targets = {}
    for pool, share in fair.items():
        repay = credit.get(pool, 0.0) / settings.repay_s
        bound = settings.repay_max * share
        demand = held[pool] + asked[pool]
        targets[pool] = min(demand, max(0.0, share + min(bound, max(-bound, repay))))
    slack = settings.tolerance * delivered
    under = sorted(
        (p for p in entitled if asked[p] and held[p] < targets[p] - slack),
        key=lambda p: held[p] / targets[p],
    )
    caps: dict[str, int | None] = dict.fromkeys(entitled)
    reclaim_for: dict[str, int] = {}
    if not under:
        return ReclaimPlan(caps=caps, preempt=[], reclaim_for=reclaim_for, targets=targets)
    for pool in under:
        deficit = targets[pool] - held[pool]
        room = 0
        for size in waiting.get(pool, ()):
            if not _within(room + size, deficit, size):
                break
            room += size
        if room:
            reclaim_for[pool] = room
    # A pool whose next job is larger than its whole target is not served by holding the
    # others back: the capacity they leave would idle.
    servable = any(
        waiting.get(pool) and _within(waiting[pool][0], targets[pool], waiting[pool][0])
        for pool in under
    )
    if settings.caps and servable:
        for pool in entitled:
            if held[pool] >= targets[pool]:
                caps[pool] = math.floor(targets[pool])
    urgent = [p for p in reclaim_for if targets[p] - held[p] > settings.preempt_above * delivered]
    need = sum(reclaim_for[p] for p in urgent) - (capacity - delivered)
    allowance = settings.budget * capacity - preempted_last_hour
    preempt: list[Hashable] = []
    spare = {p: held[p] - targets[p] for p in entitled}
    # The least work lost first: a run just past a checkpoint loses less than a newer one.
    # Against newest first, on the full sweep (docs/simulator.md) commonlab's utilisation
    # rose 0.04 to 0.27 points above load 1 and its mean JCT fell 2 to 7%, but on
    # llm-gangs it rose 21% (why is not measured yet).
    for r in sorted(running, key=lambda r: (r.since_checkpoint, -r.started)):
        if need <= 0 or allowance <= 0:
            break
        within_rules = r.accelerators <= spare[r.pool] and r.accelerators <= allowance
        if not within_rules and not _turn_over(r, capacity, credit, preempted_last_hour, settings):
            continue
        preempt.append(r.job)
        spare[r.pool] -= r.accelerators
        allowance -= r.accelerators
        need -= r.accelerators
    return ReclaimPlan(
        caps=caps, preempt=preempt, reclaim_for=reclaim_for, targets=targets, under_served=under
    )


def pins(
    held: float, target: float, size: float, capacity: float, settings: ReclaimSettings
) -> bool:
    """Whether the job the scheduler holds room for (the first that cannot start: Slurm's
    pending job with Reason=Resources), `size` accelerators of `capacity`, is pinned to the
    top of the queue until it starts: when its pool holds no more than its `target`, and
    the job is no larger than the hourly preemption budget.

    Under a fair-share order a job that ranks higher arrives while a large job's room
    drains, starts in what has drained, and the drain begins again; the pin lets the drain
    finish. Pinning every such job let pools above their share keep the top (`overload-1.5`
    0.87 -> 2.90 points). A run larger than the budget cannot be taken back but by its turn
    (`_turn_over`): pinned, it held its pool far above its share (`llm-gangs`, ten draws:
    worse than the best other policy in 3, against none with the bound; docs/simulator.md)."""
    return held <= target and size <= settings.budget * capacity


def _turn_over(
    run: Running,
    capacity: int,
    credit: Mapping[str, float],
    preempted_last_hour: float,
    settings: ReclaimSettings,
) -> bool:
    """Whether a run too large for the rules may go all the same: one larger than the whole
    hourly budget could never be preempted, and a pool holding one stays far above its
    share for as long as it runs (a gang of 1,024 is 42% of a fleet of 2,416, more than any
    state's entitlement). It may go in an hour when nothing else was preempted, once its
    pool has received its size times `turn_s` beyond its fair split (the credit the
    controller keeps): its turn is over. Even below its pool's target, since a gang larger
    than the target cannot run within it at all. On llm-gangs, ten draws: the largest
    weekly deviation's median 11.66 -> 8.39 points, utilisation 87.87 -> 86.77%
    (docs/simulator.md)."""
    return (
        run.accelerators > settings.budget * capacity
        and preempted_last_hour == 0
        and -credit.get(run.pool, 0.0) >= run.accelerators * settings.turn_s
    )


def _within(total: float, allowance: float, size: float) -> bool:
    """Whether `total` accelerators, the last job of `size`, overshoot `allowance` by at
    most half that job (the nearest whole job)."""
    return total - allowance <= size / 2
