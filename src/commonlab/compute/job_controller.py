"""The job controller: brings commonlab's view of jobs in line with the executor's.

Each tick, as the system: admitted jobs join the queue; jobs with a cancel request are
stopped; queued jobs are handed to the executor (the local one as slots free up); and what
the executor reports about every job it has becomes transitions and, at the end, the one
ledger line that charges the job. The same tick run after a restart is the reconciliation:
a job handed over just before a crash is found again by its name instead of submitted twice,
and a finished job is charged once because its hold closes once.

The controller talks to the executor and decides; every row it changes, it changes through
the compute service (one transaction each, with the record entry a state change writes).
"""

from __future__ import annotations

import logging
import pwd
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from commonlab.compute import service
from commonlab.compute.accounts import project_account
from commonlab.compute.executors.base import (
    CARRIED,
    Executor,
    ExecutorRefused,
    ExecutorUnavailable,
    Handoff,
    Observed,
    Tracked,
)
from commonlab.compute.models import Job
from commonlab.compute.rules import JobState
from commonlab.config import Settings
from commonlab.db import Database

__all__ = ["JobController"]

log = logging.getLogger("commonlab.compute")

# Waiting jobs a tick reads beyond the free slots, for those it skips (a cancel requested):
# the rest wait for the next tick.
HANDOVER_LOOKAHEAD = 32


class JobController:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        executor: Executor,
        *,
        tag: str,
        token_key: bytes,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.executor = executor
        # Derives the secret of the token each job acts with (identity.service.job_token).
        self._token_key = token_key
        # Names this facility's jobs in a shared executor: `cl-<tag>-<job id>`.
        self.tag = tag
        self._on_change = on_change or (lambda: None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    # The background loop --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="job-controller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        """Run a tick now (a job was submitted or cancelled), not at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        interval = self.settings.compute_poll_ms / 1000
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("job controller tick failed; will retry")
            self._wake.wait(interval)
            self._wake.clear()

    # One tick -------------------------------------------------------------------------------

    def tick(self) -> int:
        """One pass; returns how many jobs changed state."""
        with self.db.session() as db:
            changed = service.enqueue_admitted(db)
            self._cancel_requested(db)
            changed += self._hand_over(db)
            changed += self._observe(db)
        if changed:
            self._on_change()
        return changed

    def _cancel_requested(self, db: Session) -> None:
        for job in service.cancels_to_deliver(db):
            try:
                self.executor.cancel(self._tracked(job))
            except ExecutorUnavailable as exc:
                self.last_error = exc.message
                return

    def _free_slots(self, db: Session) -> int | None:
        if self.executor.slots is None:
            return None
        return self.executor.slots - service.cpus_handed_over(db, self.executor.name)

    def _hand_over(self, db: Session) -> int:
        free = self._free_slots(db)
        # On an executor of few slots the queue can hold thousands, and every submission
        # wakes a tick: read only the jobs that could start now, and a few a cancel skips.
        # (With run-as users, a project whose users are all busy skips its jobs: all are read,
        # so that another project's job behind them is not held back.)
        limit = None
        if free is not None and not self.executor.run_as_users:
            limit = max(free, 0) + HANDOVER_LOOKAHEAD
        waiting = service.waiting_for_handover(db, self.executor.name, limit=limit)
        held = self._run_as_held(db) if self.executor.run_as_users else None
        changed = 0
        for job in waiting:
            if job.cancel_requested_at is not None:
                continue
            run_as = None
            if held is not None:
                run_as = self._free_run_as(job, held)
                if run_as is None:
                    self._note_no_user(db, job)
                    continue  # another project's jobs may have users free
            if job.handed_over_at is None:
                if free is not None and job.cpus > free:
                    break  # first come, first served: no overtaking on the local machine
                if not service.claim_handover(db, job.id):
                    continue  # another controller took it, or it was cancelled since
            handoff = self._handoff(db, job, run_as)
            try:
                executor_id = self.executor.find(handoff) or self.executor.submit(handoff)
            except ExecutorUnavailable as exc:
                self._note_unavailable(db, job, exc)
                return changed
            except ExecutorRefused as exc:
                refused = Observed(state=JobState.REFUSED, reason=str(exc))
                service.apply_observed(db, job.id, refused)
                changed += 1
                continue
            service.handed_over(db, job.id, executor_id)
            if free is not None:
                free -= job.cpus
            if held is not None and run_as is not None:
                held[run_as] = job.id
            self.last_error = ""
        return changed

    # A Unix user of its own per job (Slurm) --------------------------------------------------

    def _run_as_held(self, db: Session) -> dict[str, int]:
        """The run-as user of every job handed over and not yet ended, to the job's id.

        The executor makes a job's folder its run-as user's at handover and gives it back to
        the facility at the end, so the folder's owner is the assignment: no column needed.
        """
        held: dict[str, int] = {}
        for job_id in service.handed_over_ids(db, self.executor.name):
            try:
                uid = (self.settings.jobs_path / str(job_id)).stat().st_uid
                held[pwd.getpwuid(uid).pw_name] = job_id
            except (FileNotFoundError, KeyError):
                continue  # claimed but its folder not made yet: it is given a user again
        return held

    def _free_run_as(self, job: Job, held: dict[str, int]) -> str | None:
        """The user job runs as: the one it already holds (a handover cut short is found
        again), else the first of its project's users no other running job holds — over
        every project, so no two jobs ever share a uid; None while all are taken."""
        users = self.settings.slurm_users(job.project)
        mine = [user for user in users if held.get(user) == job.id]
        free = [user for user in users if user not in held]
        return (mine or free or [None])[0]

    def _note_no_user(self, db: Session, job: Job) -> None:
        """The job stays queued, saying why: a job never shares a run-as user."""
        users = self.settings.slurm_users(job.project)
        which = users[0] if len(users) == 1 else f"{users[0]} … {users[-1]}"
        service.note_waiting(
            db,
            job.id,
            f"waiting for a run-as user of its own: all {len(users)} of this project's "
            f"({which}) run other jobs (slurm_user_slots)",
        )

    def _note_unavailable(self, db: Session, job: Job, exc: ExecutorUnavailable) -> None:
        """The executor did not answer: the job stays queued, nothing is charged, retry later."""
        self.last_error = exc.message
        log.warning("%s: %s", job.key, exc.message)
        service.note_waiting(
            db, job.id, f"{exc.message}; it stays queued and is handed over on recovery"
        )

    def _observe(self, db: Session) -> int:
        jobs = service.jobs_at_executor(db, self.executor.name)
        if not jobs:
            return 0
        try:
            seen = self.executor.observe([self._tracked(job) for job in jobs])
        except ExecutorUnavailable as exc:
            self.last_error = exc.message
            return 0
        changed = 0
        for job in jobs:
            observed = seen.get(job.executor_id or "")
            if observed is None or observed.state == JobState(job.state):
                continue
            if job.cancel_requested_at is not None and observed.state == JobState.FAILED:
                observed = Observed(**{**observed.__dict__, "state": JobState.CANCELLED})
            # Only from the state read above: another controller may have moved it meanwhile.
            if service.apply_observed(db, job.id, observed, expected_state=job.state):
                changed += 1
        return changed

    # Building what the executor sees --------------------------------------------------------

    def _tracked(self, job: Job) -> Tracked:
        return Tracked(
            executor_id=job.executor_id or "",
            workdir=self.settings.jobs_path / str(job.id),
            accelerator=job.accelerator,
        )

    def _handoff(self, db: Session, job: Job, run_as: str | None) -> Handoff:
        launch = service.prepare_launch(db, job, token_key=self._token_key)
        env = {
            **job.env,
            "COMMONLAB_JOB_ID": str(job.id),
            "COMMONLAB_PROJECT": job.project,
            "COMMONLAB_INPUTS": " ".join(job.inputs),
            "COMMONLAB_URL": self.settings.base_url,
            "COMMONLAB_TOKEN": launch.token,
        }
        return Handoff(
            job_id=job.id,
            name=f"cl-{self.tag}-{job.id}",
            command=job.command,
            env=env,
            workdir=self.settings.jobs_path / str(job.id),
            partition=launch.partition,
            account=project_account(job.project, self.settings.slurm_account_prefix),
            run_as=run_as,
            accelerator=job.accelerator,
            accelerators=job.accelerators,
            cpus=job.cpus,
            memory_gb=job.memory_gb,
            time_limit_minutes=job.time_limit_minutes,
            level=job.level,
            nodes=job.nodes,
            carried=self._carried(job),
        )

    def _carried(self, job: Job) -> Path | None:
        """A resubmitted job starts with the checkpoints its predecessor left."""
        if job.resubmit_of is None:
            return None
        return self.settings.jobs_path / str(job.resubmit_of) / "work" / CARRIED
