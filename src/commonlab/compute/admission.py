"""Group admission: the submissions waiting at one moment are admitted in one transaction.

Each request thread hands its job spec to one admission thread and waits. That thread takes
everything waiting (up to `max_batch`), admits each job inside its own savepoint — a refusal
takes back only its own rows and record entries — and commits once. One commit, one read of
the fleet and one wake of the record's sequencer then serve the whole group, which is what
lets admission keep up with a burst of submissions. An idle facility admits a lone job at
once: the thread never waits for a group to fill.
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
        request = _Request(actor, spec, resubmit_of)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.job is not None
        return request.job

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
        try:
            with self.db.session() as db, db.begin():
                lock_for_writing(db)
                partitions = service.partition_views(db)
                for request in group:
                    try:
                        with record.savepoint(db):
                            job = service.admit(
                                db,
                                request.actor,
                                request.spec,
                                executor=self.executor,
                                resubmit_of=request.resubmit_of,
                                partitions=partitions,
                            )
                        request.job = job
                    except Exception as exc:  # the caller's thread raises it
                        request.error = exc
        except Exception as exc:
            # The commit itself failed: nothing of this group was admitted.
            log.warning("admission group of %d failed to commit: %s", len(group), exc)
            for request in group:
                request.job = None
                request.error = request.error or exc
        finally:
            for request in group:
                request.done.set()
