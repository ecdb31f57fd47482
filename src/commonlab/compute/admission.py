"""Group admission: the submissions waiting at one moment are admitted in one transaction.

Each request thread hands its job spec to one admission thread and waits. That thread takes
everything waiting (up to `max_batch`) and admits it with `service.admit_many`: every job's
rules are checked one after the other, a refusal changes nothing, and the rows of the jobs
that pass are written together, then committed once. One commit, one read of the fleet, one
statement per table and one wake of the record's sequencer then serve the whole group, which
is what lets admission keep up with a burst of submissions. Should writing the group together
fail (a value one job carries that the database refuses), the group is admitted again one
job at a time, each in its own savepoint, so that one job's fault is only its own. An idle
facility admits a lone job at once: the thread never waits for a group to fill.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from commonlab import record
from commonlab.compute import service
from commonlab.compute.models import Job
from commonlab.compute.schemas import JobCreate
from commonlab.db import Database, lock_for_writing
from commonlab.policy.principal import Principal

__all__ = ["Admissions"]

log = logging.getLogger("commonlab.compute.admission")


@dataclass
class _Request:
    actor: Principal
    spec: JobCreate
    resubmit_of: int | None
    done: threading.Event = field(default_factory=threading.Event)
    job: Job | None = None
    error: BaseException | None = None
    partition: str = ""  # the admitted job's partition, by name (for the answer)


class Admissions:
    def __init__(self, db: Database, executor: str, *, max_batch: int = 64) -> None:
        self.db = db
        self.executor = executor
        self.max_batch = max_batch
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="admissions", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def admit(self, actor: Principal, spec: JobCreate, *, resubmit_of: int | None = None) -> Job:
        """Admit a job or raise the refusal, as `service.submit_job` would."""
        return self.admit_placed(actor, spec, resubmit_of=resubmit_of)[0]

    def admit_placed(
        self, actor: Principal, spec: JobCreate, *, resubmit_of: int | None = None
    ) -> tuple[Job, str]:
        """`admit`, with the name of the partition the job was placed on (the group read
        the fleet: the answer needs no transaction of its own to name it)."""
        request = _Request(actor, spec, resubmit_of)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.job is not None
        return request.job, request.partition

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(more)
            self.admit_group(group)

    def admit_group(self, group: list[Any]) -> None:
        """Admit every request of the group in one transaction; wake each caller after."""
        names: dict[int, str] = {}
        try:
            try:
                outcomes = self._together(group, names)
            except Exception as exc:
                log.info("admission group of %d admitted one by one: %s", len(group), exc)
                outcomes = self._one_by_one(group, names)
        except Exception as exc:
            # The commit itself failed: nothing of this group was admitted.
            log.warning("admission group of %d failed to commit: %s", len(group), exc)
            outcomes = [exc] * len(group)
        for request, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Job):
                request.job = outcome
                request.partition = names[outcome.partition_id]
            else:
                request.error = outcome
            request.done.set()

    def _together(self, group: list[Any], names: dict[int, str]) -> list[Job | Exception]:
        submissions = [service.Submission(r.actor, r.spec, r.resubmit_of) for r in group]
        with self.db.session() as db, db.begin():
            lock_for_writing(db)
            partitions = service.partition_views(db)
            names.update((p.id, p.name) for p in partitions)
            return service.admit_many(
                db, submissions, executor=self.executor, partitions=partitions
            )

    def _one_by_one(self, group: list[Any], names: dict[int, str]) -> list[Job | Exception]:
        outcomes: list[Job | Exception] = []
        with self.db.session() as db, db.begin():
            lock_for_writing(db)
            partitions = service.partition_views(db)
            names.update((p.id, p.name) for p in partitions)
            for request in group:
                try:
                    with record.savepoint(db):
                        outcomes.append(
                            service.admit(
                                db,
                                request.actor,
                                request.spec,
                                executor=self.executor,
                                resubmit_of=request.resubmit_of,
                                partitions=partitions,
                            )
                        )
                except Exception as exc:  # the caller's thread raises it
                    outcomes.append(exc)
        return outcomes
