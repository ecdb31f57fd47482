"""Evaluation routes under /api/v1: an evaluate job publishes its scores, and anyone reads the
ones they may see, per model version, per task, or as a task's leaderboard. Thin: parse, call
one use case in `workloads.evaluations`, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from commonlab.http import CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page
from commonlab.workloads import evaluations
from commonlab.workloads.schemas import EvaluationCreate, EvaluationOut, LeaderboardOut, TaskOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["evaluations"])
TASK_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
ModelRef = Annotated[
    str | None,
    Query(
        max_length=300,
        pattern=r"^models/[^@\s/]+/[^@\s/]+@[0-9]{1,9}$",
        description="a model version, e.g. models/ns/name@3",
    ),
]
TaskQuery = Annotated[str | None, Query(pattern=TASK_PATTERN, description="a task's name")]
TaskPath = Annotated[str, Path(pattern=TASK_PATTERN)]


@router.post(
    "/evaluations",
    status_code=201,
    response_model=EvaluationOut,
    summary="Publish an evaluate job's scores (with the job's token)",
)
def publish(req: EvaluationCreate, db: DbSession, principal: CurrentPrincipal) -> EvaluationOut:
    return evaluations.evaluation_out(evaluations.publish_evaluation(db, principal, req))


@router.get(
    "/evaluations",
    response_model=Page[EvaluationOut],
    summary="Published evaluations you may see, oldest first",
)
def list_evaluations(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    model: ModelRef = None,
    task: TaskQuery = None,
) -> Page[EvaluationOut]:
    items, after = evaluations.list_evaluations(
        db, principal, model=model, task=task, after=page.after, limit=page.limit
    )
    return Page[EvaluationOut](items=items, next=None if after is None else str(after))


@router.get(
    "/leaderboards",
    response_model=list[TaskOut],
    summary="Tasks with evaluations you may see, and who leads each",
)
def leaderboards(db: DbSession, principal: CurrentPrincipal) -> list[TaskOut]:
    return evaluations.tasks(db, principal)


@router.get(
    "/leaderboards/{task}",
    response_model=LeaderboardOut,
    summary="A task's evaluations you may see, best first by its primary metric",
)
def leaderboard(
    task: TaskPath,
    db: DbSession,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LeaderboardOut:
    return evaluations.leaderboard(db, principal, task, limit=limit)
