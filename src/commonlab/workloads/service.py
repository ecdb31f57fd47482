"""Workload use cases: admit a train, finetune, evaluate, index or exclude workload as a
compute job, and read back what a workload job was asked to do.

A workload is an ordinary job (admission, allocation, level, placement and charging are
compute's, unchanged) whose command is `commonlab workload run`: inside the job, that reads
the configuration stored here, pulls the inputs, runs `workloads.runtime`, and pushes what it
made. The configuration is checked at admission, so a mistake is refused with the field and
the allowed values before any hours are held.
"""

from __future__ import annotations

import importlib.util
import math
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import service as artifacts
from commonlab.compute import service as compute
from commonlab.compute.schemas import JobCreate
from commonlab.datasearch import service as datasearch
from commonlab.db import lock_for_writing
from commonlab.errors import InvalidInput, from_validation
from commonlab.policy.principal import Principal
from commonlab.workloads.config import ConfigOf, Kind, TrainConfig, WorkloadConfig, config_hash
from commonlab.workloads.events import WorkloadEvent
from commonlab.workloads.jobs import workload_in
from commonlab.workloads.models import Workload
from commonlab.workloads.schemas import WorkloadCreate, WorkloadOut

if TYPE_CHECKING:
    from commonlab.compute.models import Job

__all__ = [
    "WORKLOAD_COMMAND",
    "admit_workload",
    "check_config",
    "workload_of_job",
    "workload_out",
]

# What a workload job runs: the facility's own `commonlab` (beside the Python that runs
# it, which every sandbox and run-as user can reach), so the job speaks this facility's API.
WORKLOAD_COMMAND = (
    f"exec {shlex.quote(str(Path(sys.executable).with_name('commonlab')))} workload run"
)

# Which inputs each kind needs, and which kind of repository its output goes to.
_NEEDS: dict[Kind, tuple[bool, bool, str]] = {
    #              dataset, model, output kind
    Kind.TRAIN: (True, False, "models"),
    Kind.FINETUNE: (True, True, "models"),
    Kind.EVALUATE: (True, True, "datasets"),
    Kind.INDEX: (True, False, "datasets"),  # a search index: a dataset version `indexes` it
    Kind.EXCLUDE: (True, False, "datasets"),  # the dataset without its opted-out records
}
# The kinds whose configuration the facility completes with what opt-outs exclude: the
# deletion list is the facility's to apply, never the submitter's to remember.
_HONOUR_OPTOUTS = (Kind.INDEX, Kind.EXCLUDE)


def check_config(kind: Kind, config: dict[str, Any]) -> WorkloadConfig:
    """The configuration as its kind's schema reads it, or InvalidInput naming the field."""
    try:
        return ConfigOf[kind].model_validate(config)
    except ValidationError as exc:
        raise from_validation(exc, where="config") from None


def _check_refs(kind: Kind, req: WorkloadCreate) -> None:
    needs_dataset, needs_model, out_kind = _NEEDS[kind]
    if needs_dataset and req.dataset is None:
        raise InvalidInput(f"dataset: {kind} needs a dataset version, e.g. datasets/ns/name@1")
    if req.dataset is not None and not req.dataset.startswith("datasets/"):
        raise InvalidInput(
            f"dataset: {req.dataset!r} is not a dataset version (datasets/ns/name@N)"
        )
    if needs_model and req.model is None:
        raise InvalidInput(f"model: {kind} needs a model version, e.g. models/ns/name@1")
    if not needs_model and req.model is not None:
        raise InvalidInput(f"model: {kind} starts from no model; leave it out")
    if req.model is not None and not req.model.startswith("models/"):
        raise InvalidInput(f"model: {req.model!r} is not a model version (models/ns/name@N)")
    if kind is Kind.EVALUATE and req.nodes > 1:
        # The harness runs in one process: the other nodes would be held and charged idle.
        raise InvalidInput("nodes: evaluate runs in one process on one node; ask for 1")
    if req.out is None:
        raise InvalidInput(f"out: name the repository {kind} publishes to ({out_kind}/ns/name)")
    if not req.out.startswith(f"{out_kind}/"):
        raise InvalidInput(
            f"out: {kind} publishes to a {out_kind[:-1]} repository ({out_kind}/ns/name)"
        )
    namespace = req.out.split("/")[1]
    if namespace != req.project:
        # The job's token is confined to its project: it could publish nowhere else, and
        # would find out only after the hours were spent.
        raise InvalidInput(
            f"out: a workload of {req.project} publishes into its project's namespace "
            f"({out_kind}/{req.project}/name), not {namespace}"
        )
    for field, ref in (("dataset", req.dataset), ("model", req.model)):
        if ref is not None and not ref.rpartition("@")[2].isdigit():
            raise InvalidInput(f"{field}: pin {ref!r} to a version number (…@3)")


def _check_fits(config: TrainConfig, req: WorkloadCreate) -> None:
    """Where the ML packages are installed: the model's size keys are ones its architecture
    knows, and on CPU the job asked for the memory training it needs at the least. (Without
    them, the job finds out when it starts.)"""
    if not all(importlib.util.find_spec(name) for name in ("torch", "transformers")):
        return
    from commonlab.workloads.runtime.sizing import BYTES_PER_PARAMETER, estimate

    try:
        found = estimate(config)
    except InvalidInput as exc:
        raise InvalidInput(f"config.{exc.message}") from None
    if req.accelerator.lower() != "cpu":
        return  # the weights live in the accelerators' memory, which the job does not size
    needed = math.ceil(found.training_bytes / 2**30)
    if needed > req.memory_gb:
        raise InvalidInput(
            f"memory_gb: training this model ({found.parameters:,} parameters) needs at least "
            f"{needed} GB ({BYTES_PER_PARAMETER} bytes a parameter: weights, gradients and "
            f"AdamW's two moments), and the job asks for {req.memory_gb}: ask for more, or "
            "shrink config.model.size"
        )


def admit_workload(
    db: Session, actor: Principal, kind: Kind, req: WorkloadCreate, *, executor: str
) -> tuple[Job, Workload]:
    """Admit the workload as one job, in one transaction: compute's admission (which reads
    the inputs as `actor`, so one they may not read, or one above the job's level, refuses
    it), the workload's configuration, and its record entry naming the configuration's hash."""
    config = check_config(kind, req.config) if kind not in _HONOUR_OPTOUTS else None
    _check_refs(kind, req)
    if isinstance(config, TrainConfig):
        _check_fits(config, req)
    inputs = [ref for ref in (req.dataset, req.model) if ref is not None]
    spec = JobCreate(
        name=req.name or f"{kind} {req.out}",
        project=req.project,
        allocation_id=req.allocation_id,
        command=WORKLOAD_COMMAND,
        inputs=inputs,
        accelerator=req.accelerator,
        accelerators=req.accelerators,
        memory_gb=req.memory_gb,
        nodes=req.nodes,
        time_limit_minutes=req.time_limit_minutes,
        level=req.level,
    )
    with db.begin():
        lock_for_writing(db)
        job = compute.admit(db, actor, spec, executor=executor)
        if config is None:
            config = _with_exclusions(db, actor, kind, req)
        if kind is Kind.INDEX:
            datasearch.note_index_build(db, job.id, req.dataset or "")
        stored = config.model_dump(mode="json")
        digest = config_hash(config)
        workload = Workload(
            job_id=job.id,
            kind=kind.value,
            config=stored,
            config_sha256=digest,
            dataset=req.dataset,
            model=req.model,
            out=req.out,
        )
        db.add(workload)
        public, private = artifacts.split_public_refs(db, inputs)
        record.append(
            db,
            WorkloadEvent.WorkloadAdmitted,
            actor=actor,
            subject=job.key,
            data={
                "kind": kind.value,
                "config_sha256": digest,
                **({"dataset": req.dataset} if req.dataset in public else {}),
                **({"model": req.model} if req.model in public else {}),
            },
            private={
                "config": stored,
                "out": req.out,
                **({"inputs_private": private} if private else {}),
            },
        )
        db.flush()
    return job, workload


def _with_exclusions(
    db: Session, actor: Principal, kind: Kind, req: WorkloadCreate
) -> WorkloadConfig:
    """The configuration with every record opt-outs exclude from the dataset version added
    to what the submitter named (in the admission's transaction, so an opt-out filed a
    moment before is honoured)."""
    config = dict(req.config)
    asked = config.get("exclude") if isinstance(config.get("exclude"), dict) else {}
    owed = datasearch.exclusions_for(db, actor, req.dataset or "")
    merged = {
        field: _union(asked.get(field), owed[field]) for field in ("optouts", "records", "sha256")
    }
    if kind is Kind.EXCLUDE and not (merged["records"] or merged["sha256"]):
        raise InvalidInput(
            f"dataset: no opt-out names a record of {req.dataset}, and the config names none: "
            "there is nothing to exclude"
        )
    return check_config(kind, {**config, "exclude": merged})


def _union(asked: Any, owed: list[Any]) -> list[Any]:
    """`asked` then what `owed` adds, once each (records compared by file and number)."""
    items = list(asked) if isinstance(asked, list) else []
    seen = {_key(item) for item in items}
    for item in owed:
        if _key(item) not in seen:
            seen.add(_key(item))
            items.append(item)
    return items


def _key(item: Any) -> Any:
    return (item.get("file"), item.get("index")) if isinstance(item, dict) else item


def workload_of_job(db: Session, actor: Principal, job_id: int) -> tuple[Job, Workload]:
    """The workload job `job_id` runs (following resubmissions), for one who may read it."""
    with db.begin():
        return workload_in(db, actor, job_id)


def workload_out(job: Job, workload: Workload) -> WorkloadOut:
    return WorkloadOut(
        job_id=job.id,
        project=job.project,
        kind=workload.kind,
        config=workload.config,
        config_sha256=workload.config_sha256,
        dataset=workload.dataset,
        model=workload.model,
        out=workload.out,
        created_at=workload.created_at,
    )


# Evaluations (workloads/evaluations.py): the reads the portal shows.
from commonlab.workloads.evaluations import evaluations_of_model, leaderboard, tasks  # noqa: E402,F401
