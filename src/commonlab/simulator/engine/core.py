"""The engine's parts held together: the run table, placement and wait queues of one
simulation, and the three changes that must touch them all at once (a run starts, ends, or
is preempted and queued again), with the engine's settings."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from commonlab.simulator.engine.placement import Placement
from commonlab.simulator.engine.queues import WaitQueues
from commonlab.simulator.engine.runs import Runs

if TYPE_CHECKING:
    from commonlab.simulator.engine.policy import Policy, State
    from commonlab.simulator.inputs import Partition
    from commonlab.simulator.workload import Workload

__all__ = ["Engine", "EngineSettings"]


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


class Engine:
    """One simulation's parts. `on_start` / `on_stop`, when set (by `Preemption`), hear of
    every run that starts or stops, with its partition. `changes` counts the runs started,
    ended and preempted so far (the loop tells by it whether a pass changed anything)."""

    __slots__ = (
        "changes",
        "n_keys",
        "on_start",
        "on_stop",
        "placement",
        "policy",
        "queues",
        "runs",
        "settings",
        "state",
    )

    def __init__(
        self,
        workload: Workload,
        parts: Sequence[Partition],
        eligible: Sequence[tuple[int, ...]],
        policy: Policy,
        state: State,
        keys: np.ndarray,
        settings: EngineSettings,
    ) -> None:
        self.policy = policy
        self.state = state
        self.settings = settings
        self.n_keys = int(keys.max()) + 1 if len(workload) else 1
        self.runs = runs = Runs(workload, eligible, keys, state)
        self.placement = Placement(
            parts,
            size=runs.size,
            one_domain=runs.one_domain,
            eligible=runs.eligible,
            track_domains=policy.preempts,
        )
        self.queues = WaitQueues(
            self.n_keys, len(workload), priority=policy.priority, queued_at=runs.queued_at
        )
        self.on_start = None
        self.on_stop = None
        self.changes = 0

    def start(self, j: int, p: int) -> None:
        """Run j starts on partition p, which it fits: it takes its accelerators, leaves its
        queue, and its pool and tenant hold them until it ends. (The run table's side is
        written here rather than in a method of `Runs`: this runs once per run, and a call
        less per start and end is what kept the split engine as fast as the one before.)"""
        self.placement.take(j, p)
        self.changes += 1
        queues = self.queues
        queues.waiting[j] = 0
        queues.total -= 1
        runs, state = self.runs, self.state
        now, need, pool = state.now, runs.size[j], runs.pool[j]
        runs.start_time[j] = now
        runs.placed[j] = p
        runs.running[j] = 1
        state.pool_running[pool] += need
        state.pool_waiting[pool] -= 1
        state.pool_queued[pool] -= need
        state.account(runs.tenant[j], need)
        heapq.heappush(runs.completions, (now + runs.runtime[j], j))
        if self.on_start is not None:
            self.on_start(j, p)

    def over_cap(self, j: int) -> bool:
        """Whether starting run j would take its pool above the policy's cap (GrpTRES)."""
        pool = self.runs.pool[j]
        return self.state.pool_running[pool] + self.runs.size[j] > self.policy.caps[pool]

    def finish(self, j: int) -> None:
        """Run j ends now, having run its whole runtime."""
        runs = self.runs
        p = runs.placed[j]
        self.placement.give_back(j, p)
        self._stop(j)
        runs.end_time[j] = self.state.now
        if self.on_stop is not None:
            self.on_stop(j, p)

    def _stop(self, j: int) -> None:
        self.changes += 1
        runs, state = self.runs, self.state
        need = runs.size[j]
        runs.running[j] = 0
        state.pool_running[runs.pool[j]] -= need
        state.account(runs.tenant[j], -need)

    def preempt(self, j: int) -> int:
        """Stop run j now and queue the next run of its job at the back (from its last
        checkpoint when the policy checkpoints, else from the beginning); returns its key."""
        runs, policy = self.runs, self.policy
        p = runs.placed[j]
        self.placement.give_back(j, p)
        self._stop(j)
        if self.on_stop is not None:
            self.on_stop(j, p)
        r = runs.cut(j, checkpoint_s=policy.checkpoint_s, restart_s=policy.restart_s)
        key = runs.key[r]
        self.queues.requeue(r, key)
        return key
