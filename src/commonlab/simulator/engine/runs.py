"""The run table and its accounting: a run is a job, or the next run of a preempted job
(numbered from len(workload)); the table keeps each run's columns, when it started and
ended (written by core.Engine as runs start and end), the completions heap, the runs
preemption cut short and what they lost, and turns all of it into the `Outcome`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from commonlab.simulator.engine.policy import State
    from commonlab.simulator.workload import Workload

__all__ = ["Outcome", "Runs"]


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
    # Seconds of each cut run's work its checkpoint kept (the job's next run resumed from
    # there); 0 where the job restarted from the beginning.
    cut_kept: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Runs:
    """Columns indexed by run (plain lists: the engine reads them one item at a time), which
    grow by one row when a preempted job is queued again. `completions` holds (end, run) for
    every started run; a preempted run's entry stays and is skipped (`running` is 0)."""

    __slots__ = (
        "completions",
        "cut_end",
        "cut_job",
        "cut_kept",
        "cut_start",
        "eligible",
        "end_time",
        "key",
        "last_run",
        "lost_accelerator_seconds",
        "one_domain",
        "origin",
        "placed",
        "pool",
        "preempted_seconds",
        "preemptions",
        "queued_at",
        "running",
        "runtime",
        "size",
        "start_time",
        "state",
        "tenant",
    )

    def __init__(
        self,
        workload: Workload,
        eligible: Sequence[tuple[int, ...]],
        keys: np.ndarray,
        state: State,
    ) -> None:
        n = len(workload)
        self.state = state
        self.runtime: list[float] = workload.runtime.tolist()
        self.size: list[int] = workload.accelerators.tolist()
        self.tenant: list[int] = workload.tenant.tolist()
        self.pool: list[int] = workload.pool.tolist()
        self.eligible = [eligible[c] for c in workload.class_set.tolist()]
        self.one_domain: list[bool] = workload.one_domain.tolist()
        self.key: list[int] = keys.tolist()
        self.origin = list(range(n))  # the job each run belongs to
        self.queued_at = state.queued_at
        self.start_time = [math.nan] * n
        self.end_time = [math.nan] * n
        self.placed = [-1] * n
        self.running = bytearray(n)
        self.last_run = list(range(n))  # per job
        self.completions: list[tuple[float, int]] = []
        self.preemptions = 0
        self.lost_accelerator_seconds = 0.0
        self.preempted_seconds = np.zeros(n)
        self.cut_job: list[int] = []
        self.cut_start: list[float] = []
        self.cut_end: list[float] = []
        self.cut_kept: list[float] = []

    def queued(self, j: int) -> None:
        """Run j joins its pool's waiting work."""
        state, pool = self.state, self.pool[j]
        state.pool_waiting[pool] += 1
        state.pool_queued[pool] += self.size[j]

    def cut(self, j: int, *, checkpoint_s: float | None = None, restart_s: float = 0.0) -> int:
        """Run j was preempted now: count what it lost and add the job's next run, queued
        now at the back (its age restarts, as after Slurm's requeue or Kueue's eviction).
        Without `checkpoint_s` the next run starts from the beginning; with it, from the
        run's last checkpoint (taken every `checkpoint_s` seconds from its start), plus
        `restart_s` to restore it: only the work since that checkpoint and the restart are
        lost. Returns the new run's number."""
        now = self.state.now
        job = self.origin[j]
        held = now - self.start_time[j]
        kept = held // checkpoint_s * checkpoint_s if checkpoint_s else 0.0
        self.cut_job.append(job)
        self.cut_start.append(self.start_time[j])
        self.cut_end.append(now)
        self.cut_kept.append(kept)
        self.preempted_seconds[job] += held
        restart = restart_s if checkpoint_s else 0.0
        self.lost_accelerator_seconds += self.size[j] * (held - kept + restart)
        self.preemptions += 1
        r = len(self.origin)
        self.runtime.append(self.runtime[j] - kept + restart)
        for column in (
            self.size,
            self.tenant,
            self.pool,
            self.eligible,
            self.one_domain,
            self.key,
        ):
            column.append(column[j])
        self.origin.append(job)
        self.queued_at.append(now)
        self.start_time.append(math.nan)
        self.end_time.append(math.nan)
        self.placed.append(-1)
        self.running.append(0)
        self.last_run[job] = r
        self.queued(r)
        return r

    def outcome(self, *, events: int, backfilled: int) -> Outcome:
        """Every job as its last run left it."""
        final = np.array(self.last_run, dtype=np.int64)
        return Outcome(
            start=np.array(self.start_time)[final],
            end=np.array(self.end_time)[final],
            partition=np.array(self.placed, dtype=np.int32)[final],
            events=events,
            backfilled=backfilled,
            preemptions=self.preemptions,
            lost_accelerator_seconds=self.lost_accelerator_seconds,
            preempted_seconds=self.preempted_seconds,
            cut_job=np.array(self.cut_job, dtype=np.int64),
            cut_start=np.array(self.cut_start),
            cut_end=np.array(self.cut_end),
            cut_kept=np.array(self.cut_kept),
        )
