"""Which workload a job runs, read in the caller's transaction (admission's `service` and
publishing an evaluation both ask)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from commonlab.compute import service as compute
from commonlab.errors import NotFound
from commonlab.policy.principal import Principal
from commonlab.workloads.models import Workload

if TYPE_CHECKING:
    from commonlab.compute.models import Job

__all__ = ["workload_in"]

# Far more resubmissions than anyone makes by hand: a bound on a chain a loop could follow.
_LONGEST_CHAIN = 1000


def workload_in(db: Session, actor: Principal, job_id: int) -> tuple[Job, Workload]:
    """Job `job_id`, for one who may read it, and the workload it runs. A resubmitted
    workload job runs its original's workload (compute copies the job, not the workload):
    the chain of resubmissions is followed back to it. NotFound when it runs none."""
    job = compute.readable_job(db, actor, job_id)
    current: Job | None = job
    for _ in range(_LONGEST_CHAIN):
        if current is None:
            break
        workload = db.get(Workload, current.id)
        if workload is not None:
            return job, workload
        resubmitted = current.resubmit_of
        current = compute.readable_job(db, actor, resubmitted) if resubmitted else None
    raise NotFound(f"job {job_id} runs no workload")
