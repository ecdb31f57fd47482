"""Workload input and output shapes: a workload to admit, and what a workload job was asked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict, StringConstraints, field_validator

from commonlab.bounded import MAX_ID, Int64
from commonlab.policy.levels import Level
from commonlab.schemas import Input

__all__ = [
    "EvaluationCreate",
    "EvaluationOut",
    "LeaderboardOut",
    "Standing",
    "TaskOut",
    "WorkloadCreate",
    "WorkloadOut",
]

Project = Annotated[str, StringConstraints(min_length=1, max_length=40)]
# `datasets/ns/name@3`, `models/ns/name@1` (a tag or commit works too: the facility pins it).
VersionRef = Annotated[
    str, StringConstraints(min_length=3, max_length=300, pattern=r"^(datasets|models)/[^@\s]+@\S+$")
]
# Where the output goes: `models/ns/name` (train, finetune) or `datasets/ns/name` (evaluate's log).
RepoPath = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=300, pattern=r"^(datasets|models)/[^@\s/]+/[^@\s/]+$"
    ),
]
Accelerator = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
]


class WorkloadCreate(Input):
    """A workload to run as a job. `config` is the kind's configuration (TrainConfig,
    FinetuneConfig or EvaluateConfig in `workloads/config.py`), checked before anything is
    admitted; the job's resources are a job's, as for `POST /api/v1/jobs`: on several
    `nodes`, `accelerators` (one process each) and `memory_gb` are each node's."""

    project: Project
    config: Annotated[dict[str, Any], Field(max_length=64)]
    dataset: VersionRef | None = None
    model: VersionRef | None = None
    out: RepoPath | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    allocation_id: Annotated[Int64, Field(ge=1, le=2**53)] | None = None
    accelerator: Accelerator = "cpu"
    accelerators: Annotated[Int64, Field(ge=1, le=100_000)] = 1
    memory_gb: Annotated[Int64, Field(ge=1, le=1_000_000)] = 4
    nodes: Annotated[Int64, Field(ge=1, le=100_000)] = 1
    time_limit_minutes: Annotated[Int64, Field(ge=1, le=43_200)] = 60
    level: Level = Level.CL1

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return Level.parse(value)


class WorkloadOut(BaseModel):
    """What a workload job was asked to do (its resources and state: `GET /api/v1/jobs/{id}`)."""

    job_id: int
    project: str
    kind: str
    config: dict[str, Any]
    config_sha256: str
    dataset: str | None
    model: str | None
    out: str | None
    created_at: datetime


# Evaluations: what an evaluate job publishes, and how scores are read back ---------------------

# A leaderboard's name, as `EvaluateConfig.task` takes it.
TaskName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]
# A version pinned to its number: what was evaluated must not move under the score.
PinnedModel = Annotated[
    str, StringConstraints(max_length=300, pattern=r"^models/[^@\s/]+/[^@\s/]+@[0-9]{1,9}$")
]
PinnedDataset = Annotated[
    str, StringConstraints(max_length=300, pattern=r"^datasets/[^@\s/]+/[^@\s/]+@[0-9]{1,9}$")
]
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_./-]{0,63}$")]
# Finite, a real number (not true or "0.5"), and small enough to print: NaN and infinity
# cannot go on the record, and no score needs more than fifteen digits.
MetricValue = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class EvaluationCreate(Input):
    """The scores an evaluate job publishes at its end (`POST /api/v1/evaluations`), after
    pushing its log as a dataset version: the task, harness, model and dataset the job was
    admitted with, its metrics, how many samples, and the Merkle root of their hashes."""

    job: Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
    task: TaskName
    harness: Literal["inspect", "lm_eval"]
    model: PinnedModel
    dataset: PinnedDataset
    # The dataset version holding the Inspect log, samples.jsonl and results.json.
    log: PinnedDataset | None = None
    metrics: Annotated[dict[MetricName, MetricValue], Field(min_length=1, max_length=32)]
    samples: Annotated[int, Strict(), Field(ge=0, le=1_000_000_000)]
    sample_root: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class EvaluationOut(BaseModel):
    """One published evaluation as a reader may see it: `log` is null when there is none or
    the reader may not read it (`log_withheld` says which)."""

    id: int
    job: int
    task: str
    harness: str
    model: str
    dataset: str
    log: str | None
    log_withheld: bool
    metrics: dict[str, float]
    samples: int
    sample_root: str
    level: int
    # The project owning the model's repository; null when a person owns it.
    project: str | None
    created_at: datetime


class Standing(BaseModel):
    """An evaluation's place on its task's leaderboard: ranked by the leaderboard's metric;
    one that does not report it comes last, unranked."""

    rank: int | None
    score: float | None
    evaluation: EvaluationOut


class LeaderboardOut(BaseModel):
    task: str
    # The metric ranked by (higher is better): see `workloads.evaluations.primary_metric`.
    metric: str | None
    standings: list[Standing]


class TaskOut(BaseModel):
    """A task with evaluations the reader may see: how many, and who leads."""

    task: str
    evaluations: int
    metric: str | None
    leader: Standing | None
