"""Who may see or act on a job: the one decision every job use case opens a job through
(reading it, cancelling it, posting its metrics), so no use case keeps a copy of the rule."""

from __future__ import annotations

from sqlalchemy.orm import Session

from commonlab.compute.models import Job
from commonlab.errors import AccessDenied, NotFound
from commonlab.policy import Action, Resource, authorize_inside
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = ["authorize_job", "readable_job"]


def authorize_job(actor: Principal, action: Action, job: Job) -> None:
    """`action` on what the job holds: the action's rule, then reading at the job's level."""
    resource = Resource.job(job.project, Level(job.level), owner=job.submitter_id, job_id=job.id)
    authorize_inside(actor, action, resource)


def readable_job(db: Session, actor: Principal, job_id: int) -> Job:
    """The job, if `actor` may read it; in the caller's transaction."""
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    try:
        authorize_job(actor, Action.JobRead, job)
    except AccessDenied:
        # Whether a job exists is not public.
        if actor.is_public:
            raise NotFound(f"no job {job_id}") from None
        raise
    return job
