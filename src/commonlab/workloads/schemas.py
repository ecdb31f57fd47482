"""Workload input and output shapes: a workload to admit, and what a workload job was asked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from commonlab.bounded import Int64
from commonlab.compute.schemas import JobOut
from commonlab.policy.levels import Level
from commonlab.schemas import Input

__all__ = ["WorkloadCreate", "WorkloadOut"]

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
    admitted; the job's resources are a job's, as for `POST /api/v1/jobs`."""

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
    time_limit_minutes: Annotated[Int64, Field(ge=1, le=43_200)] = 60
    level: Level = Level.CL1

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return Level.parse(value)


class WorkloadOut(BaseModel):
    job: JobOut
    kind: str
    config: dict[str, Any]
    config_sha256: str
    dataset: str | None
    model: str | None
    out: str | None
    created_at: datetime
