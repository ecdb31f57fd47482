"""Evaluations: an evaluate job publishes its scores on one model version, and readers see them
per model, per task (a leaderboard) and as a list of tasks.

Publishing is one transaction: the job must be the publisher's own and an `evaluate`
workload admitted for exactly this model, dataset, task and harness; its log, when named,
must be a version that job published. Reading never has a rule of its own: an evaluation
shows only to one who may read both the model and the dataset it names, by the decision
artifacts takes for a read (`artifacts.visible_refs`), so a contained model's scores never
reach someone who may not read the model. On the record an evaluation is in clear only when
every version it names is public; otherwise only its job is, the rest committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import service as artifacts
from commonlab.compute import service as compute
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound, Unauthenticated
from commonlab.policy.principal import Principal, Scope
from commonlab.workloads.config import EvaluateConfig, Kind
from commonlab.workloads.events import WorkloadEvent
from commonlab.workloads.jobs import workload_in
from commonlab.workloads.models import Evaluation, Workload
from commonlab.workloads.schemas import (
    EvaluationCreate,
    EvaluationOut,
    LeaderboardOut,
    Standing,
    TaskOut,
)

__all__ = [
    "PRIMARY_METRICS",
    "evaluation_out",
    "evaluations_of_model",
    "leaderboard",
    "list_evaluations",
    "primary_metric",
    "publish_evaluation",
    "rank",
    "tasks",
]

# A leaderboard ranks by the first of these that any of its evaluations reports (Inspect's
# scorers report `accuracy`, lm-eval `acc`, a mean-reducing scorer `mean`, others `score`);
# failing all, by the alphabetically first metric name reported. Higher is better for each.
PRIMARY_METRICS = ("accuracy", "acc", "mean", "score")
# How many evaluations a read looks at per query, filtering by what the reader may see.
_BATCH = 200


# Publishing ------------------------------------------------------------------------------------


def publish_evaluation(db: Session, actor: Principal, req: EvaluationCreate) -> Evaluation:
    """Record the evaluation job `req.job` made (one per job), in one transaction with its
    record entry; refuse with what to fix, writing nothing, when the job is not the
    publisher's own evaluate workload, when what is posted is not what it was admitted to
    evaluate, or when the log is not a version it published."""
    _check_publisher(actor, req.job)
    with db.begin():
        if compute.inputs_of_own_job(db, actor, req.job) is None:
            raise AccessDenied(
                f"job {req.job} is not one of your jobs: an evaluation is published by the job "
                "that ran it, with its own token (inside the job: $COMMONLAB_JOB_ID)"
            )
        try:
            _, workload = workload_in(db, actor, req.job)
        except NotFound:
            workload = None
        if workload is None or workload.kind != Kind.EVALUATE:
            what = "runs no workload" if workload is None else f"is a {workload.kind} workload"
            raise InvalidInput(
                f"job: job {req.job} {what}; only an evaluate workload (POST "
                "/api/v1/workloads/evaluate) publishes an evaluation"
            )
        _check_as_admitted(workload, req)
        if db.scalar(select(Evaluation.id).where(Evaluation.job_id == req.job)) is not None:
            raise Conflict(
                f"job {req.job} has already published its evaluation (one per job): "
                "evaluate again in a new job"
            )
        model = _facts(db, actor, req.model, "model")
        log = _facts(db, actor, req.log, "log") if req.log is not None else None
        if log is not None and log.job != str(req.job):
            raise InvalidInput(
                f"log: {req.log} was not published by job {req.job}: push the log from the "
                "evaluate job itself, then name the version it made"
            )
        evaluation = Evaluation(
            job_id=req.job,
            task=req.task,
            harness=req.harness,
            model=model.ref,
            dataset=str(artifacts.parse_ref(req.dataset)),
            log=log.ref if log is not None else None,
            metrics=dict(req.metrics),
            samples=req.samples,
            sample_root=req.sample_root,
            level=model.level,
            project=model.project or "",
        )
        db.add(evaluation)
        db.flush()
        _append_entry(db, actor, evaluation)
    return evaluation


def _check_publisher(actor: Principal, job_id: int) -> None:
    if actor.person_id is None:
        raise Unauthenticated("publishing an evaluation needs the evaluate job's token")
    if not actor.has_scope(Scope.WRITE):
        raise AccessDenied("publishing an evaluation needs a token with the write scope")
    if actor.job_id is not None and actor.job_id != job_id:
        raise AccessDenied(
            f"this token is job {actor.job_id}'s: it publishes job {actor.job_id}'s "
            f"evaluation only, not job {job_id}'s"
        )


def _check_as_admitted(workload: Workload, req: EvaluationCreate) -> None:
    """What is posted is exactly what the job was admitted to evaluate."""
    config = EvaluateConfig.model_validate(workload.config)
    asked = {
        "task": config.task,
        "harness": config.harness,
        "model": workload.model,
        "dataset": workload.dataset,
    }
    for field, wanted in asked.items():
        posted = getattr(req, field)
        if posted != wanted:
            raise InvalidInput(
                f"{field}: job {req.job} was admitted to evaluate {field} {wanted!r}, not "
                f"{posted!r}: publish the scores of what it evaluated"
            )


def _facts(db: Session, actor: Principal, ref: str, field: str) -> artifacts.VersionFacts:
    """The version as `actor` reads it (NotFound names it when they may not)."""
    try:
        return artifacts.version_facts(db, actor, ref)
    except ValueError:
        raise InvalidInput(
            f"{field}: {ref!r} is not a version reference like datasets/ns/name@3"
        ) from None


def _append_entry(db: Session, actor: Principal, evaluation: Evaluation) -> None:
    named = [evaluation.model, evaluation.dataset] + ([evaluation.log] if evaluation.log else [])
    public, _ = artifacts.split_public_refs(db, named)
    fields: dict[str, Any] = {
        "task": evaluation.task,
        "harness": evaluation.harness,
        "model": evaluation.model,
        "dataset": evaluation.dataset,
        "log": evaluation.log,
        "metrics": evaluation.metrics,
        "samples": evaluation.samples,
        "sample_root": evaluation.sample_root,
    }
    # In clear only when everything it names is public: a contained model's or dataset's
    # evaluation enters as commitments (the record cannot be redacted later).
    in_clear = len(public) == len(named)
    record.append(
        db,
        WorkloadEvent.EvaluationPublished,
        actor=actor,
        subject=f"evaluation/{evaluation.id}",
        data={"job": f"job/{evaluation.job_id}", **(fields if in_clear else {})},
        private=None if in_clear else fields,
    )


# Reading ---------------------------------------------------------------------------------------


def evaluation_out(evaluation: Evaluation, *, log_shown: bool = True) -> EvaluationOut:
    withheld = evaluation.log is not None and not log_shown
    return EvaluationOut(
        id=evaluation.id,
        job=evaluation.job_id,
        task=evaluation.task,
        harness=evaluation.harness,
        model=evaluation.model,
        dataset=evaluation.dataset,
        log=None if withheld else evaluation.log,
        log_withheld=withheld,
        metrics=evaluation.metrics,
        samples=evaluation.samples,
        sample_root=evaluation.sample_root,
        level=evaluation.level,
        project=evaluation.project or None,
        created_at=evaluation.created_at,
    )


def _visible(
    db: Session, actor: Principal, evaluations: Sequence[Evaluation]
) -> list[EvaluationOut]:
    """Those of `evaluations` whose model and dataset `actor` may read (artifacts decides, as
    for a read), each with its log only when they may read that too. In the caller's
    transaction."""
    named = {ref for e in evaluations for ref in (e.model, e.dataset, e.log) if ref}
    seen = artifacts.visible_refs(db, actor, named)
    return [
        evaluation_out(e, log_shown=e.log in seen)
        for e in evaluations
        if e.model in seen and e.dataset in seen
    ]


def list_evaluations(
    db: Session,
    actor: Principal,
    *,
    model: str | None = None,
    task: str | None = None,
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[EvaluationOut], int | None]:
    """One page of the evaluations `actor` may see, oldest first, narrowed to a model version
    and a task when given, and the id to continue after (None at the end)."""
    query = select(Evaluation)
    if model is not None:
        query = query.where(Evaluation.model == model)
    if task is not None:
        query = query.where(Evaluation.task == task)
    found: list[EvaluationOut] = []
    with db.begin():
        while len(found) <= limit:
            batch = query if after is None else query.where(Evaluation.id > after)
            rows = db.scalars(batch.order_by(Evaluation.id).limit(_BATCH)).all()
            found.extend(_visible(db, actor, rows))
            if len(rows) < _BATCH:
                break
            after = rows[-1].id
    page = found[:limit]
    return page, page[-1].id if len(found) > limit else None


def evaluations_of_model(
    db: Session, actor: Principal, model_ref: str, *, limit: int = 100
) -> list[EvaluationOut]:
    """The evaluations of one model version (`models/ns/name@3`) that `actor` may see."""
    return list_evaluations(db, actor, model=model_ref, limit=limit)[0]


def primary_metric(metrics: Iterable[Mapping[str, float]]) -> str | None:
    """The metric a leaderboard ranks by: the first of PRIMARY_METRICS any evaluation
    reports, else the alphabetically first name any reports, else None."""
    names = {name for reported in metrics for name in reported}
    for name in PRIMARY_METRICS:
        if name in names:
            return name
    return min(names, default=None)


def rank(evaluations: Sequence[EvaluationOut], metric: str | None) -> list[Standing]:
    """Best first by `metric` (higher is better; a tie goes to the earlier publication);
    those that do not report it follow, unranked, oldest first."""
    scores = {e.id: e.metrics[metric] for e in evaluations if metric in e.metrics}
    scored = sorted((e for e in evaluations if e.id in scores), key=lambda e: (-scores[e.id], e.id))
    unscored = sorted((e for e in evaluations if e.id not in scores), key=lambda e: e.id)
    return [
        Standing(rank=place, score=scores[e.id], evaluation=e)
        for place, e in enumerate(scored, start=1)
    ] + [Standing(rank=None, score=None, evaluation=e) for e in unscored]


def leaderboard(db: Session, actor: Principal, task: str, *, limit: int = 50) -> LeaderboardOut:
    """A task's evaluations that `actor` may see, best first by its primary metric (see
    `primary_metric`): the metric is chosen from what they may see, so a hidden evaluation
    never changes the board. A task with none they may see is an empty board, not an error
    (whether hidden evaluations exist is not theirs to learn)."""
    seen = _all_visible(db, actor, select(Evaluation).where(Evaluation.task == task))
    metric = primary_metric(e.metrics for e in seen)
    return LeaderboardOut(task=task, metric=metric, standings=rank(seen, metric)[:limit])


def tasks(db: Session, actor: Principal) -> list[TaskOut]:
    """Every task with evaluations `actor` may see, by name: how many, and the leader."""
    by_task: dict[str, list[EvaluationOut]] = {}
    for evaluation in _all_visible(db, actor, select(Evaluation)):
        by_task.setdefault(evaluation.task, []).append(evaluation)
    summaries = []
    for task in sorted(by_task):
        metric = primary_metric(e.metrics for e in by_task[task])
        standings = rank(by_task[task], metric)
        summaries.append(
            TaskOut(
                task=task,
                evaluations=len(standings),
                metric=metric,
                leader=standings[0] if standings else None,
            )
        )
    return summaries


def _all_visible(db: Session, actor: Principal, query: Any) -> list[EvaluationOut]:
    """Every row of `query` that `actor` may see, read in batches in one transaction."""
    found: list[EvaluationOut] = []
    after = 0
    with db.begin():
        while True:
            rows = db.scalars(
                query.where(Evaluation.id > after).order_by(Evaluation.id).limit(_BATCH)
            ).all()
            found.extend(_visible(db, actor, rows))
            if len(rows) < _BATCH:
                return found
            after = rows[-1].id
