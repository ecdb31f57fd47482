"""The scheduling policies the simulator compares, each a `Policy` (see engine.py): FIFO with
EASY backfill, Slurm multifactor (age + Fair Tree), dominant-resource fair sharing with
borrowing (Kueue cohorts), and commonlab's: multifactor steered by the share controller."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from commonlab.compute import share_controller
from commonlab.compute.share_controller import (
    ControllerSettings,
    ReclaimSettings,
    Running,
    fair_split,
    next_weights,
    pins,
    plan_reclaim,
)
from commonlab.errors import InvalidInput
from commonlab.simulator.engine import Policy, State
from commonlab.simulator.engine.policy import RunningRuns
from commonlab.simulator.fairtree import fair_tree_factors

__all__ = [
    "JOB_SIZE_WEIGHT",
    "POLICIES",
    "RECLAIM",
    "SIZE_WEIGHT_FLEET",
    "CommonlabPolicy",
    "DominantResourceFair",
    "FifoBackfill",
    "Multifactor",
    "MultifactorJobSize",
    "make_policy",
]


# PriorityWeightJobSize (with PriorityFavorSmall=YES) of commonlab's policy, and of the
# `multifactor-size` baseline that shows what the size factor does without the controller.
# On 100,384 accelerators a job of 8 ranks 56 points above one of 64: 9.4 hours of age, a
# fraction of the fair-share range (10,000). Of 3e4, 1e5, 3e5 and 1e6 tried on the study's
# workload (docs/simulator.md), 1e5 lowered mean JCT by about 2% at 1M and 3M jobs while
# keeping utilisation; 1e6 starved the large jobs (utilisation -0.7 points).
# The weight is for a fleet of SIZE_WEIGHT_FLEET accelerators and scales with the fleet, so
# a job ranks about one point per accelerator below a smaller one on any fleet: unscaled, on
# 2,416 GPUs a job of 1,024 ranked ~294 days of age below a job of one (issue 19).
JOB_SIZE_WEIGHT = 100_000.0
SIZE_WEIGHT_FLEET = 100_384


class FifoBackfill(Policy):
    """One queue in submit order; EASY backfill around the first job that cannot start."""

    name = "fifo"

    def bind(self, state: State) -> np.ndarray:
        self._queued = state.queued_at
        return np.zeros(len(state.workload), dtype=np.int64)

    def priority(self, key: int, job: int) -> float:
        return -self._queued[job]


class _ReclaimQuota:
    """Reclaim by preemption up to an entitled quota (Kueue's `reclaimWithinCohort: Any`):
    a pool with work waiting and fewer accelerators in use than its quota (entitled share x
    capacity) may preempt the newest runs of pools above theirs, up to its quota."""

    def _bind_quota(self, state: State) -> None:
        self._running = state.pool_running
        self._waiting = state.pool_waiting
        # Classes are pooled: the quota is a share of the whole facility (exact when every
        # class is split by the same shares).
        self._quota = [max(share, 1e-9) * state.capacity for share in state.entitled]

    def reclaimers(self) -> list[int]:
        below = [
            p
            for p, quota in enumerate(self._quota)
            if self._waiting[p] and self._running[p] < quota
        ]
        return sorted(below, key=lambda p: self._running[p] / self._quota[p])

    def may_reclaim(self, pool: int, size: int) -> bool:
        return self._running[pool] + size <= self._quota[pool]

    def is_victim(self, pool: int) -> bool:
        return self._running[pool] > self._quota[pool]


class Multifactor(Policy):
    """Slurm's priority/multifactor with age, Fair Tree fair share and (optionally) job
    size, EASY backfill.

    priority = w_fairshare * F(tenant) + w_age * (now - submit) / max_age
    + w_jobsize * capacity / SIZE_WEIGHT_FLEET * (1 - accelerators / capacity), with F
    from Fair Tree over decayed usage (half-life `half_life`), recomputed every `tick`
    seconds (PriorityCalcPeriod). The last term is Slurm's job-size factor with
    PriorityFavorSmall=YES (PriorityWeightJobSize = w_jobsize scaled to the fleet; on whole
    nodes of equal size its node and CPU fractions are both the job's fraction of the
    accelerators); 0 by default, as in the facility's configuration. Age is
    not capped at max_age (PriorityMaxAge), which keeps the order of waiting jobs fixed
    between recomputations: each (tenant, job size) is one FIFO queue and the engine merges
    their heads; a queue's tenant gives its fair-share factor."""

    name = "multifactor"
    tick = 300.0
    w_fairshare = 10_000.0
    w_age = 1_000.0
    w_jobsize = 0.0
    max_age = 7 * 86_400.0
    half_life = 7 * 86_400.0

    def __init__(self, *, job_size_weight: float | None = None) -> None:
        if job_size_weight is not None:
            if job_size_weight < 0:
                raise InvalidInput(f"the job-size weight must be >= 0, not {job_size_weight}")
            self.w_jobsize = job_size_weight

    def bind(self, state: State) -> np.ndarray:
        self.state = state
        workload = state.workload
        self._queued = state.queued_at
        self.tenant_pool = [0] * len(workload.tenants)
        for t, p in zip(workload.tenant.tolist(), workload.pool.tolist(), strict=True):
            self.tenant_pool[t] = p
        self.weights = list(state.entitled)
        self._decayed = [0.0] * len(workload.tenants)
        self._seen = [0.0] * len(workload.tenants)
        self._last = 0.0
        self.factor = [1.0] * len(workload.tenants)
        keys, self.key_tenant, self.key_size = _size_keys(
            workload.tenant, workload.accelerators, by_size=self.w_jobsize > 0
        )
        capacity = max(state.capacity, 1)
        weight = self.w_jobsize * capacity / SIZE_WEIGHT_FLEET
        self._size_term = [weight * (1 - size / capacity) for size in self.key_size]
        return keys

    def priority(self, key: int, job: int) -> float:
        # -w_age * submit / max_age orders like the age term and does not change with time.
        return (
            self.w_fairshare * self.factor[self.key_tenant[key]]
            + self._size_term[key]
            - self.w_age * self._queued[job] / self.max_age
        )

    def on_tick(self, now: float) -> None:
        used = self.state.tenant_usage()
        decay = 0.5 ** ((now - self._last) / self.half_life)
        self._last = now
        for t, total in enumerate(used):
            self._decayed[t] = self._decayed[t] * decay + (total - self._seen[t])
            self._seen[t] = total
        self.factor = fair_tree_factors(
            pool_shares=self.weights, tenant_pool=self.tenant_pool, tenant_usage=self._decayed
        )


def _size_keys(
    tenant: np.ndarray, size: np.ndarray, *, by_size: bool
) -> tuple[np.ndarray, list[int], list[int]]:
    """Queue keys for multifactor: one per tenant, or with a job-size factor one per
    (tenant, job size) that occurs, since a later job may outrank an earlier one of its
    tenant only through its size. Returns the key of every job and each key's tenant and
    job size (0 without sizes)."""
    if not by_size or not len(tenant):
        n = int(tenant.max()) + 1 if len(tenant) else 0
        return tenant.astype(np.int64), list(range(n)), [0] * n
    pairs, keys = np.unique(
        np.stack((tenant.astype(np.int64), size.astype(np.int64)), axis=1),
        axis=0,
        return_inverse=True,
    )
    return keys.reshape(-1).astype(np.int64), pairs[:, 0].tolist(), pairs[:, 1].tolist()


class MultifactorJobSize(Multifactor):
    """`multifactor` with the job-size factor commonlab's policy uses: the baseline that
    separates what the size factor does from what the share controller does."""

    name = "multifactor-size"
    w_jobsize = JOB_SIZE_WEIGHT


# commonlab's reclaim settings, production's too (bench/reclaim_trade.py weighs others).
# On the quick sweep's overload-1.2 preempting at 2 points held 1.25 points and lost 2.5
# points of utilisation to ~890 preemptions; at 10, 0.61 and 1.4; caps alone, 1.09 and 0.6
# (but bursty 5.98 points, against 3.14 at 10).
RECLAIM = share_controller.RECLAIM
# The priority of a pinned run: above any the factors give (pinned runs oldest first).
PINNED = 1e12


class CommonlabPolicy(Multifactor):
    """Multifactor whose pool shares are the share controller's weights, with caps and
    bounded reclaim by the controller's plan: what production does by setting the
    member-state accounts' Fairshare and GrpTRES and requeueing the jobs the plan names;
    with Slurm's job-size factor favouring small jobs (PriorityWeightJobSize =
    JOB_SIZE_WEIGHT, PriorityFavorSmall=YES).

    At every priority recomputation the policy samples, for each pool with work waiting,
    the accelerators it holds and those its entitlement gives it then
    (`controller.fair_split` over running plus waiting accelerators), in sums that decay
    with half-life `memory`; every `window` seconds the controller compares the two and
    moves the pool's weight by a bounded step, leaving it alone while the error is inside
    the deadband.

    With `reclaim` (the default), at the first reclaim pass after each recomputation the
    controller's `plan_reclaim` sees what each pool holds and waits for and the credit
    each is owed (the decayed fair minus received accelerator-time), caps the pools at or
    above their targets while an under-served pool waits, and names the newest runs to
    preempt within the hourly budget; a preempted job resumes from its last checkpoint
    (every `checkpoint_s`, plus `restart_s` to restore it). `reclaim` is True (the
    settings `RECLAIM`), a `ReclaimSettings`, or None / False: only the weights (the policy
    before issue 19).

    With `pin` (the default; it needs reclaim), at each recomputation the run the last
    backfill pass held room for goes to the top of the queue until it starts when its pool
    holds no more than its target in the last plan and the run is within the hourly
    preemption budget (`share_controller.pins`; production sets a negative Nice on the job
    Slurm shows pending for Resources)."""

    name = "commonlab"
    w_jobsize = JOB_SIZE_WEIGHT
    window = 3_600.0
    # Half-life of the sums the controller compares (0: each window on its own).
    memory = 86_400.0
    # How many waiting jobs of an under-served pool, and newest runs of a pool above its
    # target, the reclaim plan looks at.
    plan_depth = 64
    pin = True

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        memory: float | None = None,
        reclaim: ReclaimSettings | bool | None = True,
        checkpoint_s: float | None = 3_600.0,
        restart_s: float = 300.0,
        job_size_weight: float | None = None,
        pin: bool | None = None,
    ) -> None:
        super().__init__(job_size_weight=job_size_weight)
        self.settings = settings or share_controller.STEERING
        if pin is not None:
            self.pin = pin
        if memory is not None:
            self.memory = memory
        if (checkpoint_s is not None and checkpoint_s <= 0) or restart_s < 0:
            raise InvalidInput("the checkpoint interval must be > 0 and the restart cost >= 0")
        if reclaim is True:
            reclaim = RECLAIM
        self.reclaim = reclaim or None
        self.preempts = self.reclaim is not None
        self.checkpoint_s = checkpoint_s
        self.restart_s = restart_s

    def bind(self, state: State) -> np.ndarray:
        keys = super().bind(state)
        self._names = [str(p) for p in range(len(state.workload.pools))]
        self._entitled = dict(zip(self._names, state.entitled, strict=True))
        self._got = [0.0] * len(self._names)
        self._fair = [0.0] * len(self._names)
        self._sampled = 0.0
        self._window_start = 0.0
        self.history: list[tuple[float, list[float]]] = []
        self.caps = [math.inf] * len(self._names) if self.reclaim is not None else None
        self._plan_due = False
        # (when, accelerators) of the runs this policy preempted, for the hourly budget.
        self._preempted: deque[tuple[float, int]] = deque()
        # Runs pinned to the top of the queue (until they start), and each pool's target in
        # the last reclaim plan.
        self._pinned: set[int] = set()
        self._targets: dict[str, float] = {}
        return keys

    def priority(self, key: int, job: int) -> float:
        if job in self._pinned:
            return PINNED - self._queued[job]
        return super().priority(key, job)

    def _sample(self, now: float) -> None:
        state = self.state
        dt = now - self._sampled
        self._sampled = now
        keep = 0.5 ** (dt / self.memory) if self.memory else 1.0
        running, queued = state.pool_running, state.pool_queued
        fair = fair_split(
            float(sum(running)),
            entitled=self._entitled,
            demand={n: running[p] + queued[p] for p, n in enumerate(self._names)},
        )
        for p, name in enumerate(self._names):
            waits = state.pool_waiting[p] > 0
            self._got[p] = self._got[p] * keep + (running[p] * dt if waits else 0.0)
            self._fair[p] = self._fair[p] * keep + (fair[name] * dt if waits else 0.0)

    def on_tick(self, now: float) -> None:
        self._sample(now)
        self._plan_due = self.reclaim is not None
        if now - self._window_start >= self.window:
            weights = next_weights(
                entitled=self._entitled,
                delivered=dict(zip(self._names, self._got, strict=True)),
                weights=dict(zip(self._names, self.weights, strict=True)),
                waiting={n: self._fair[p] > 0 for p, n in enumerate(self._names)},
                fair=dict(zip(self._names, self._fair, strict=True)),
                settings=self.settings,
            )
            self.weights = [weights[n] for n in self._names]
            self.history.append((now, list(self.weights)))
            self._window_start = now
            if not self.memory:
                # No memory: each window is judged on its own.
                self._got = [0.0] * len(self._names)
                self._fair = [0.0] * len(self._names)
        super().on_tick(now)
        self._pin_reserved()

    def _pin_reserved(self) -> None:
        """Pin the run the last backfill pass held room for, if its pool is at or under
        its target and the run within the hourly preemption budget (`pins`); a pin stays
        until the run starts, as a job's Nice does on Slurm."""
        state = self.state
        run, pool = state.reserved, state.reserved_pool
        if not self.pin or run < 0 or run in self._pinned or not self._targets:
            return
        target = self._targets[self._names[pool]]
        if pins(
            state.pool_running[pool], target, state.reserved_size, state.capacity, self.reclaim
        ):
            self._pinned.add(run)

    def evictions(
        self,
        running: Callable[[int, int], RunningRuns],
        waiting: Callable[[int, int], list[int]],
    ) -> list[int]:
        if not self._plan_due or self.reclaim is None or self.caps is None:
            return []
        self._plan_due = False
        state, names, now = self.state, self._names, self.state.now
        while self._preempted and self._preempted[0][0] <= now - 3_600.0:
            self._preempted.popleft()
        in_use = {n: state.pool_running[p] for p, n in enumerate(names)}
        known = {
            "capacity": state.capacity,
            "entitled": self._entitled,
            "in_use": in_use,
            "queued": {n: state.pool_queued[p] for p, n in enumerate(names)},
            "credit": {n: self._fair[p] - self._got[p] for p, n in enumerate(names)},
            "preempted_last_hour": sum(size for _, size in self._preempted),
            "settings": self.reclaim,
        }
        # What each pool holds and waits for in all says who is under-served and who holds
        # more than its target; only then are those pools' newest runs (the only victims
        # the plan may take) and the under-served pools' first waiting jobs listed.
        plan = plan_reclaim(running=[], waiting={}, **known)
        if plan.under_served:
            every = self.checkpoint_s
            candidates = []
            for p, name in enumerate(names):
                if in_use[name] <= plan.targets[name]:
                    continue
                runs, _, sizes, starts = running(p, self.plan_depth)
                candidates += [
                    Running(r, name, size, start, (now - start) % every if every else now - start)
                    for r, size, start in zip(runs, sizes, starts, strict=True)
                ]
            plan = plan_reclaim(
                running=candidates,
                waiting={n: waiting(names.index(n), self.plan_depth) for n in plan.under_served},
                **known,
            )
            size_of = {c.job: c.accelerators for c in candidates}
            self._preempted.extend((now, size_of[r]) for r in plan.preempt)
        for p, name in enumerate(names):
            cap = plan.caps[name]
            self.caps[p] = math.inf if cap is None else cap
        self._targets = plan.targets
        return [int(r) for r in plan.preempt]


class DominantResourceFair(_ReclaimQuota, Policy):
    """Kueue-style fair sharing: one queue per pool (a ClusterQueue in one cohort) with a
    nominal quota of every accelerator class equal to its entitled share. The pool with the
    lowest dominant share (max over classes of usage / quota) goes first, so a pool below
    its quota is served before one that borrows; borrowing is unlimited when capacity is
    free. A pool below its quota with work waiting reclaims what others borrowed by
    preempting their newest jobs (Kueue's `reclaimWithinCohort: Any`), up to its quota."""

    name = "drf"
    dynamic = True
    preempts = True

    def bind(self, state: State) -> np.ndarray:
        self.state = state
        self._bind_quota(state)
        return state.workload.pool.astype(np.int64)

    def priority(self, key: int, job: int) -> float:
        # Lowest dominant share first; the engine breaks ties by the older head job.
        return -self._running[key] / self._quota[key]


POLICIES: dict[str, type[Policy]] = {
    "fifo": FifoBackfill,
    "multifactor": Multifactor,
    "multifactor-size": MultifactorJobSize,
    "drf": DominantResourceFair,
    "commonlab": CommonlabPolicy,
}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise InvalidInput(f"unknown policy {name!r}: choose from {', '.join(POLICIES)}") from None
