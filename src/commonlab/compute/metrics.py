"""The metrics a job posts while it runs (loss, learning rate, throughput), so its submitter
and project can follow a training run live: from the command line, the job's page, the API.

Private telemetry, kept off the public record on purpose: it is high-volume, and it is the
project's own (the job's admission and end are on the record already). So these use cases
write no record entry. One row per job, name and step; a step sent again replaces its row,
so a job may resend a batch it is not sure arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from commonlab.compute.access import authorize_job, readable_job
from commonlab.compute.models import Job, JobMetric
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.compute.schemas import MetricPoint
from commonlab.db import utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput
from commonlab.policy import Action
from commonlab.policy.principal import Principal

__all__ = [
    "MAX_JOB_METRICS",
    "Curve",
    "Latest",
    "MetricsPage",
    "metric_curves",
    "metrics_of",
    "record_metrics",
]

# Distinct names one job may hold: what a page's `latest` reads stays small.
MAX_JOB_METRICS = 64


@dataclass(frozen=True)
class Latest:
    step: int
    value: float
    at: datetime


@dataclass(frozen=True)
class MetricsPage:
    """Points in step order, each {"step", "time", name: value, ...}, as they are posted."""

    job_id: int
    names: list[str]
    latest: dict[str, Latest]
    points: list[dict[str, Any]]
    next_after_step: int | None


@dataclass(frozen=True)
class Curve:
    """One metric over a whole run, at most a few hundred points whatever its length: each
    point is a run of consecutive steps, at its last step, with their mean value."""

    name: str
    points: list[tuple[int, float]]
    latest: Latest


def record_metrics(
    db: Session, actor: Principal, job_id: int, points: Sequence[MetricPoint]
) -> int:
    """Store a batch of a job's metrics in one transaction; how many values were written.

    Only the job's submitter posts them (through the job's own token, or their own), and
    only until the job ends; a job's token posts for its own job alone. Anyone else gets the
    answer a read of the job would give them, and nothing is written."""
    with db.begin():
        job = readable_job(db, actor, job_id)
        _check_may_post(actor, job)
        rows = _rows(job.id, points)
        held = set(db.scalars(select(JobMetric.name).where(JobMetric.job_id == job.id).distinct()))
        new = sorted({row["name"] for row in rows} - held)
        if len(held) + len(new) > MAX_JOB_METRICS:
            raise InvalidInput(
                f"points: job {job.id} already has {len(held)} metrics and these add {len(new)} "
                f"({', '.join(new[:5])}{', …' if len(new) > 5 else ''}); a job keeps at most "
                f"{MAX_JOB_METRICS}"
            )
        insert = sqlite_insert if db.get_bind().dialect.name == "sqlite" else postgres_insert
        statement = insert(JobMetric)
        db.execute(
            statement.on_conflict_do_update(
                index_elements=["job_id", "name", "step"],
                set_={"value": statement.excluded.value, "at": statement.excluded.at},
            ),
            rows,
        )
    return len(rows)


def _check_may_post(actor: Principal, job: Job) -> None:
    # Posting is part of running the job: the submitter's own action on it (write scope,
    # still a member cleared for its level), not something a reader of the job may do.
    authorize_job(actor, Action.JobSubmit, job)
    if actor.person_id != job.submitter_id:
        raise AccessDenied(f"only the submitter of job {job.id} posts its metrics")
    if actor.job_id is not None and actor.job_id != job.id:
        raise AccessDenied(
            f"a job's token posts metrics for its own job (job {actor.job_id}), not job {job.id}"
        )
    if JobState(job.state) in TERMINAL:
        raise Conflict(
            f"job {job.id} has ended ({job.state}): its metrics are closed, nothing was written"
        )


def _rows(job_id: int, points: Sequence[MetricPoint]) -> list[dict[str, Any]]:
    """One row per (name, step); of a step sent twice in one batch the later point wins
    (a database refuses to update one row twice in one statement)."""
    now = utcnow()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for point in points:
        at = now if point.time is None else datetime.fromtimestamp(point.time, UTC)
        for name, value in point.values.items():
            rows[(name, point.step)] = {
                "job_id": job_id,
                "name": name,
                "step": point.step,
                "value": value,
                "at": at,
            }
    return list(rows.values())


def metrics_of(
    db: Session,
    actor: Principal,
    job_id: int,
    *,
    names: Sequence[str] = (),
    after_step: int | None = None,
    limit: int = 1000,
) -> MetricsPage:
    """One page of a job's metrics (all of them, or those in `names`), up to `limit` steps
    after `after_step`, for whoever may read the job; and each metric's latest value."""
    with db.begin():
        job = readable_job(db, actor, job_id)
        of_job = JobMetric.job_id == job.id
        every = sorted(db.scalars(select(JobMetric.name).where(of_job).distinct()))
        wanted = [name for name in names if name in every] if names else every
        chosen = of_job & JobMetric.name.in_(wanted)
        steps_query = select(JobMetric.step).where(chosen).distinct().order_by(JobMetric.step)
        if after_step is not None:
            steps_query = steps_query.where(JobMetric.step > after_step)
        steps = list(db.scalars(steps_query.limit(limit + 1))) if wanted else []
        more, steps = len(steps) > limit, steps[:limit]
        points: dict[int, dict[str, Any]] = {}
        if steps:
            rows = db.scalars(
                select(JobMetric)
                .where(chosen, JobMetric.step >= steps[0], JobMetric.step <= steps[-1])
                .order_by(JobMetric.step, JobMetric.name)
            )
            for row in rows:
                point = points.setdefault(row.step, {"step": row.step, "time": 0.0})
                point["time"] = max(point["time"], row.at.timestamp())
                point[row.name] = row.value
        latest = {name: found for name in wanted if (found := _latest(db, job.id, name))}
    return MetricsPage(
        job_id=job.id,
        names=every,
        latest=latest,
        points=list(points.values()),
        next_after_step=steps[-1] if more else None,
    )


def _latest(db: Session, job_id: int, name: str) -> Latest | None:
    """The metric's value at the last step that had one (an index seek from the end)."""
    row = db.execute(
        select(JobMetric.step, JobMetric.value, JobMetric.at)
        .where(JobMetric.job_id == job_id, JobMetric.name == name, JobMetric.value.is_not(None))
        .order_by(JobMetric.step.desc())
        .limit(1)
    ).first()
    return None if row is None else Latest(step=row.step, value=row.value, at=row.at)


def metric_curves(
    db: Session,
    actor: Principal,
    job_id: int,
    *,
    first: Sequence[str] = (),
    most: int = 8,
    buckets: int = 200,
) -> list[Curve]:
    """The job's metrics as curves to draw, for whoever may read the job: those named in
    `first` in that order, then the others by name, at most `most`. Averaged in the database
    over runs of steps, so a page reads a few hundred rows per metric however long the job
    ran."""
    with db.begin():
        job = readable_job(db, actor, job_id)
        of_job = JobMetric.job_id == job.id
        every = sorted(db.scalars(select(JobMetric.name).where(of_job).distinct()))
        chosen = [name for name in first if name in every]
        chosen += [name for name in every if name not in chosen]
        curves = []
        for name in chosen:
            latest = _latest(db, job.id, name)
            if latest is None:
                continue  # only nulls so far: nothing to draw
            if len(curves) == most:
                break
            has_value = of_job & (JobMetric.name == name) & JobMetric.value.is_not(None)
            first = db.scalar(select(func.min(JobMetric.step)).where(has_value)) or 0
            width = max(1, (latest.step - first) // buckets + 1)
            # The first step is a run of its own and the last run ends at the latest step,
            # so the curve spans the run exactly.
            bucket = (JobMetric.step - first + width - 1) // width
            rows = db.execute(
                select(func.max(JobMetric.step), func.avg(JobMetric.value))
                .where(has_value)
                .group_by(bucket)
                .order_by(func.max(JobMetric.step))
            )
            points = [(int(step), float(value)) for step, value in rows]
            curves.append(Curve(name=name, points=points, latest=latest))
    return curves
