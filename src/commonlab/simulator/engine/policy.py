"""What a scheduling policy is to the engine: the `Policy` interface (which queue a job waits
in, a queue head's priority, periodic recomputation, reclaim by preemption) and the `State`
it reads (the facility's counters and each tenant's delivered accelerator-time)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from commonlab.simulator.inputs import Partition
    from commonlab.simulator.workload import Workload

__all__ = ["Policy", "RunningRuns", "State"]

# Running runs, as the engine lists them for a policy's own preemption plan: run numbers,
# their pools, accelerators and start times, in four parallel lists.
RunningRuns = tuple[list[int], list[int], list[int], list[float]]


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
    # True when the policy reclaims capacity by preempting running jobs (see `reclaimers`
    # and `evictions`).
    preempts = False
    # Seconds between the checkpoints of a running job (None: a preempted job restarts from
    # the beginning), and the seconds a run resumed from a checkpoint spends restoring it.
    checkpoint_s: float | None = None
    restart_s: float = 0.0
    # Per pool, the accelerators it may hold (Slurm GrpTRES): a job that would take its
    # pool above its cap does not start. None: no caps. A policy changes the list in place;
    # its queue keys must each hold jobs of one pool (a pass leaves a capped queue whole).
    caps: list[float] | None = None

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

    def evictions(
        self,
        running: Callable[[int, int], RunningRuns],
        waiting: Callable[[int, int], list[int]],
    ) -> list[int]:
        """Runs to preempt now by the policy's own plan, at every reclaim pass. When the
        policy needs them, `running(pool, n)` lists the newest n running runs of a pool,
        newest first, and `waiting(pool, n)` the accelerators of the first n waiting runs
        of a pool, in the order they would start. The engine queues the runs named again
        as it does any preempted run."""
        return []


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
        # The run the last backfill pass held room for (Slurm's pending job with Reason
        # Resources) and its pool; -1 before any.
        self.reserved = -1
        self.reserved_pool = -1
        self.reserved_size = 0
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

    def account(self, tenant: int, delta: int) -> None:
        """The engine only: `tenant` holds `delta` more accelerators from now on."""
        now = self.now
        self._tenant_used[tenant] += self._tenant_rate[tenant] * (now - self._tenant_since[tenant])
        self._tenant_since[tenant] = now
        self._tenant_rate[tenant] += delta
