"""Workload routes under /api/v1: admit a train, finetune or evaluate workload as a job, and
read back what a workload job was asked to do (a job reads its own configuration so)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from commonlab.bounded import Int64
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession
from commonlab.workloads import service
from commonlab.workloads.config import Kind
from commonlab.workloads.schemas import WorkloadCreate, WorkloadOut

router = APIRouter(prefix="/api/v1", tags=["workloads"])
Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]


@router.post(
    "/workloads/{kind}",
    response_model=WorkloadOut,
    status_code=201,
    summary="Train, fine-tune or evaluate a model, as a job",
)
def admit(
    kind: Kind, req: WorkloadCreate, request: Request, db: DbSession, principal: CurrentPrincipal
) -> WorkloadOut:
    executor = request.app.state.facility.settings.executor
    job, workload = service.admit_workload(db, principal, kind, req, executor=executor)
    controller = getattr(request.app.state, "jobs", None)
    if controller is not None:
        controller.wake()
    return service.workload_out(job, workload)


@router.get(
    "/workloads/{job_id}", response_model=WorkloadOut, summary="What a workload job was asked"
)
def workload(job_id: Id, db: DbSession, principal: CurrentPrincipal) -> WorkloadOut:
    job, found = service.workload_of_job(db, principal, job_id)
    return service.workload_out(job, found)
