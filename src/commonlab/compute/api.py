"""Compute routes under /api/v1: the fleet and jobs. Thin: parse, call one service function,
wake the job controller, render."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from commonlab.bounded import Int64
from commonlab.compute import accounts, reports, service, workload_export
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.compute.models import Job
from commonlab.compute.rules import JobState
from commonlab.compute.schemas import (
    MAX_METRIC_POINTS,
    FleetOut,
    JobCreate,
    JobMetricsCreate,
    JobMetricsOut,
    JobMetricsWrittenOut,
    JobOut,
    LatestMetricOut,
    NodeStateUpdate,
    TransitionOut,
    metric_names,
)
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page, paginate

router = APIRouter(prefix="/api/v1", tags=["compute"])
Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]
NodeName = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]


def _wake(request: Request) -> None:
    controller = getattr(request.app.state, "jobs", None)
    if controller is not None:
        controller.wake()


# The fleet


@router.get("/fleet", response_model=FleetOut, summary="Capacity and use per partition")
def fleet(db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    return service.fleet_overview(db, principal)


@router.get(
    "/fleet/document",
    response_model=FleetSpec,
    summary="The fleet as it is, in the fleet document's schema (what the simulator reads)",
)
def fleet_document(db: DbSession, principal: CurrentPrincipal) -> FleetSpec:
    return workload_export.fleet_document(db, principal)


@router.put("/fleet", summary="Make the fleet match a fleet document (operators)")
def apply_fleet(spec: FleetSpec, db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    return service.apply_fleet(db, principal, spec)


@router.post("/fleet/nodes/{name}/state", summary="Drain a node or bring it back (operators)")
def node_state(
    name: NodeName, req: NodeStateUpdate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, str]:
    node = service.set_node_state(db, principal, name, req.state)
    return {"node": node.name, "state": node.state}


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False
    dry_run: bool = False


class SteerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_days: Annotated[Int64, Field(ge=1, le=90)] = 7


def _runner(request: Request) -> Any:
    """The executor's accounts (Slurm's sacctmgr), or None where it has none."""
    return request.app.state.jobs.executor.accounts


@router.post("/fleet/accounts/sync", summary="Mirror governance into Slurm's accounts (operators)")
def sync_accounts(
    req: SyncIn, request: Request, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    settings = request.app.state.facility.settings
    return accounts.sync_accounts(
        db, principal, _runner(request), settings, force=req.force, dry_run=req.dry_run
    )


@router.post("/fleet/shares/steer", summary="One step of the share controller (operators)")
def steer(
    req: SteerIn, request: Request, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    settings = request.app.state.facility.settings
    return accounts.steer_shares(
        db, principal, _runner(request), settings, window_days=req.window_days
    )


# Jobs


@router.post("/jobs", response_model=JobOut, status_code=201, summary="Submit a job")
def submit(req: JobCreate, request: Request, db: DbSession, principal: CurrentPrincipal) -> JobOut:
    job, partition = _admit(request, db, principal, req)
    _wake(request)
    return _admitted(db, job, partition)


def _admit(
    request: Request,
    db: Any,
    principal: Any,
    req: JobCreate,
    resubmit_of: int | None = None,
) -> tuple[Job, str | None]:
    """One use case, one transaction (reading the inputs, admitting, holding the hours):
    through the admission batcher when it runs (a served facility), else directly. With the
    job, its partition's name when admission gave it."""
    admissions = request.app.state.admissions
    if admissions.running:
        return admissions.admit_placed(principal, req, resubmit_of=resubmit_of)
    executor = request.app.state.facility.settings.executor
    job = service.submit_job(db, principal, req, executor=executor, resubmit_of=resubmit_of)
    return job, None


def _admitted(db: Any, job: Job, partition: str | None) -> JobOut:
    """A job just admitted, from what admission returned (no reading it back)."""
    if partition is None:
        with db.begin():
            partition = service.partition_name(db, job.partition_id)
    admitted = TransitionOut(state=job.state, reason="admitted", at=job.submitted_at)
    # Its submitter just read every input to admit it: all are theirs to see.
    fields = _fields(job, inputs=job.inputs)
    return JobOut(**fields, partition=partition, transitions=[admitted])


@router.get("/jobs", response_model=Page[JobOut], summary="Jobs of your projects")
def jobs(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    project: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    state: JobState | None = None,
) -> Page[JobOut]:
    query = service.jobs_query(principal, project=project, state=state)
    with db.begin():
        names = service.partition_names(db)
        return paginate(
            db,
            query,
            Job.id,
            page,
            lambda j: JobOut(
                **_fields(j, inputs=service.shown_inputs(db, principal, j)),
                partition=names[j.partition_id],
            ),
        )


def _fields(job: Job, *, inputs: list[str]) -> dict[str, Any]:
    """A job's fields for `JobOut`, with its inputs as the viewer may see them."""
    fields = {
        name: getattr(job, name)
        for name in JobOut.model_fields
        if name not in {"transitions", "partition", "inputs"}
    }
    return {**fields, "inputs": inputs}


def _one(db: Any, principal: Any, job_id: int) -> JobOut:
    job = service.get_job(db, principal, job_id)
    with db.begin():
        names = service.partition_names(db)
        history = service.job_history(db, job)
        inputs = service.shown_inputs(db, principal, job)
    return JobOut(
        **_fields(job, inputs=inputs),
        partition=names[job.partition_id],
        transitions=[TransitionOut(state=t.state, reason=t.reason, at=t.at) for t in history],
    )


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job and its history")
def job(job_id: Id, db: DbSession, principal: CurrentPrincipal) -> JobOut:
    return _one(db, principal, job_id)


class LogOut(BaseModel):
    text: str
    offset: int
    size: int
    finished: bool


@router.get("/jobs/{job_id}/logs", response_model=LogOut, summary="Read a job's output")
def logs(
    job_id: Id,
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    stream: Literal["stdout", "stderr"] = "stdout",
    offset: Annotated[Int64, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[Int64, Query(ge=1, le=1 << 20)] = 65_536,
) -> LogOut:
    root = request.app.state.facility.settings.jobs_path
    chunk = service.read_log(db, principal, job_id, stream, offset, limit, root)
    return LogOut(
        text=chunk.data.decode("utf-8", errors="replace"),
        offset=chunk.offset,
        size=chunk.size,
        finished=chunk.finished,
    )


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel(job_id: Id, request: Request, db: DbSession, principal: CurrentPrincipal) -> JobOut:
    service.cancel_job(db, principal, job_id)
    _wake(request)
    return _one(db, principal, job_id)


@router.post(
    "/jobs/{job_id}/resubmit", response_model=JobOut, status_code=201, summary="Run it again"
)
def resubmit(job_id: Id, request: Request, db: DbSession, principal: CurrentPrincipal) -> JobOut:
    spec = service.resubmission(db, principal, job_id)
    new, partition = _admit(request, db, principal, spec, resubmit_of=job_id)
    _wake(request)
    return _admitted(db, new, partition)


@router.post(
    "/jobs/{job_id}/metrics",
    response_model=JobMetricsWrittenOut,
    summary="Post a running job's metrics (its submitter, or the job itself)",
)
def post_metrics(
    job_id: Id, req: JobMetricsCreate, db: DbSession, principal: CurrentPrincipal
) -> JobMetricsWrittenOut:
    written = service.record_metrics(db, principal, job_id, req.points)
    return JobMetricsWrittenOut(job_id=job_id, points=len(req.points), values=written)


@router.get("/jobs/{job_id}/metrics", response_model=JobMetricsOut, summary="A job's metrics")
def metrics(
    job_id: Id,
    db: DbSession,
    principal: CurrentPrincipal,
    names: Annotated[
        list[str] | None,
        Query(max_length=32, description="metrics to read (repeat, or comma-separated)"),
    ] = None,
    after_step: Annotated[Int64 | None, Query(ge=0, le=2**53)] = None,
    limit: Annotated[Int64, Query(ge=1, le=MAX_METRIC_POINTS)] = MAX_METRIC_POINTS,
) -> JobMetricsOut:
    page = service.metrics_of(
        db, principal, job_id, names=metric_names(names or []), after_step=after_step, limit=limit
    )
    return JobMetricsOut(
        job_id=page.job_id,
        names=page.names,
        latest={
            name: LatestMetricOut(step=m.step, value=m.value, time=m.at.timestamp())
            for name, m in page.latest.items()
        },
        points=page.points,
        next_after_step=page.next_after_step,
    )


# The public jobs report


@router.get(
    "/reports/jobs",
    summary="Jobs admitted over a period, per partition, level and state, and their hours",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def jobs_report(
    db: DbSession,
    principal: CurrentPrincipal,
    start: Annotated[date, Query(description="the first day counted (UTC), e.g. 2026-10-01")],
    end: Annotated[date, Query(description="the day after the last one counted (UTC)")],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    report = reports.jobs_report(db, principal, start=start, end=end)
    if format == "json":
        return report
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=reports.JOBS_REPORT_COLUMNS)
    writer.writeheader()
    writer.writerows(report["rows"])
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")


@router.get(
    "/reports/workload",
    summary="Every job of a window, for the simulator: tenants opaque, each job with its pool "
    "(delegates and operators)",
    responses={
        200: {
            "description": "streamed as read: the CSV (totals in the X-Workload-* headers), "
            "one JSON object (totals after the rows), or JSON lines (the totals last)",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
def workload_report(
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    start: Annotated[
        date | None, Query(description="the first day (UTC); default: 92 days before end")
    ] = None,
    end: Annotated[
        date | None, Query(description="the day after the last one (UTC); default: tomorrow")
    ] = None,
    format: Annotated[Literal["csv", "json", "ndjson"], Query()] = "csv",
) -> Any:
    export = workload_export.open_export(db, principal, start=start, end=end)
    pieces, media_type = workload_export.FORMATS[format]
    headers = {"X-Workload-From": export.start.isoformat(), "X-Workload-To": export.end.isoformat()}
    if format == "csv":
        # The CSV has no room for totals after its rows: they are counted before them.
        totals = workload_export.count(db, export)
        headers["X-Workload-Jobs"] = str(totals.jobs)
        headers["X-Workload-Replayable"] = str(totals.replayable)
    body = workload_export.streamed(request.app.state.db, export, pieces)
    return StreamingResponse(body, media_type=media_type, headers=headers)
