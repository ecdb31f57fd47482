"""An executor for tests that runs nothing: it takes every job handed to it and reports what
the test scripts (`report`), like httpx's MockTransport. It can refuse a job or stop
answering, the two ways a real executor fails.

    fake = FakeExecutor()
    controller = JobController(db, settings, fake, tag="t", token_key=b"k")
    controller.tick()                     # the queued job is handed over
    fake.report(job_id, Observed(state=JobState.SUCCEEDED, elapsed_seconds=60, ...))
    controller.tick()                     # and charged
"""

from __future__ import annotations

from collections.abc import Sequence

from commonlab.compute.executors.base import (
    ExecutorRefused,
    ExecutorUnavailable,
    Handoff,
    Observed,
    Tracked,
)
from commonlab.compute.rules import JobState

__all__ = ["FakeExecutor"]


class FakeExecutor:
    """Named like the executor it stands in for (`local` by default), since jobs are admitted
    for the executor the facility's settings name."""

    accounts = None

    def __init__(
        self, *, name: str = "local", slots: int | None = None, run_as_users: bool = False
    ) -> None:
        self.name = name
        self.slots = slots
        self.run_as_users = run_as_users
        # Every job handed over, by its id here.
        self.handoffs: dict[str, Handoff] = {}
        # Ids of the jobs the controller asked to stop, in order.
        self.cancelled: list[str] = []
        # While set, every call fails with ExecutorUnavailable(this message).
        self.unavailable: str | None = None
        # The next submit is refused with this reason (then it is cleared).
        self.refuse_next: str | None = None
        self._states: dict[str, Observed] = {}

    # Scripting it ------------------------------------------------------------------------------

    def id_of(self, job_id: int) -> str:
        """The id a commonlab job has here (KeyError while it was not handed over)."""
        return next(eid for eid, h in self.handoffs.items() if h.job_id == job_id)

    def report(self, job_id: int, observed: Observed) -> None:
        """From now on, say this about the job (by its commonlab id)."""
        self._states[self.id_of(job_id)] = observed

    # The executor ------------------------------------------------------------------------------

    def _answer(self) -> None:
        if self.unavailable is not None:
            raise ExecutorUnavailable(self.unavailable)

    def submit(self, handoff: Handoff) -> str:
        self._answer()
        if self.refuse_next is not None:
            reason, self.refuse_next = self.refuse_next, None
            raise ExecutorRefused(reason)
        executor_id = f"fake-{len(self.handoffs) + 1}"
        self.handoffs[executor_id] = handoff
        self._states[executor_id] = Observed(state=JobState.QUEUED)
        return executor_id

    def find(self, handoff: Handoff) -> str | None:
        self._answer()
        return next((eid for eid, h in self.handoffs.items() if h.name == handoff.name), None)

    def observe(self, jobs: Sequence[Tracked]) -> dict[str, Observed]:
        self._answer()
        lost = Observed(state=JobState.FAILED, reason="lost: the fake never had it")
        return {job.executor_id: self._states.get(job.executor_id, lost) for job in jobs}

    def cancel(self, job: Tracked) -> None:
        self._answer()
        self.cancelled.append(job.executor_id)
