"""Compute input and output shapes: job specs, jobs, the fleet."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
)

from commonlab.bounded import Int64
from commonlab.compute.rules import JobState
from commonlab.policy.levels import Level
from commonlab.schemas import Input

__all__ = [
    "FleetOut",
    "JobCreate",
    "JobOut",
    "JobState",
    "NodeStateUpdate",
    "PartitionOut",
    "TransitionOut",
]

Accelerator = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
]
Project = Annotated[str, StringConstraints(min_length=1, max_length=40)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, StringConstraints(max_length=4096)]
Ref = Annotated[str, StringConstraints(min_length=3, max_length=300)]
# Variables the facility sets itself: a job may not override them.
RESERVED_ENV = frozenset(
    {
        "COMMONLAB_JOB_ID",
        "COMMONLAB_PROJECT",
        "COMMONLAB_INPUTS",
        "COMMONLAB_URL",
        "COMMONLAB_TOKEN",
        "HOME",
        "PATH",
        "USER",
    }
)


def _no_reserved(env: dict[str, str]) -> dict[str, str]:
    clash = sorted(set(env) & RESERVED_ENV)
    if clash:
        raise ValueError(f"the facility sets {', '.join(clash)} itself; leave them out")
    return env


class JobCreate(Input):
    """A job spec. `accelerators` counts devices of `accelerator` class (CPU partitions count
    cores); `cpus` defaults to one per accelerator."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "job"
    project: Project
    allocation_id: Annotated[Int64, Field(ge=1, le=2**53)] | None = None
    command: Annotated[str, StringConstraints(min_length=1, max_length=65_536)]
    env: Annotated[dict[EnvName, EnvValue], Field(max_length=64), AfterValidator(_no_reserved)] = (
        Field(default_factory=dict)
    )
    inputs: Annotated[list[Ref], Field(max_length=64)] = Field(default_factory=list)
    accelerator: Accelerator
    accelerators: Annotated[Int64, Field(ge=1, le=100_000)] = 1
    cpus: Annotated[Int64, Field(ge=1, le=1_000_000)] | None = None
    memory_gb: Annotated[Int64, Field(ge=1, le=1_000_000)] = 1
    time_limit_minutes: Annotated[Int64, Field(ge=1, le=43_200)] = 60
    level: Level = Level.CL1

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return Level.parse(value)


class NodeStateUpdate(Input):
    state: Annotated[str, StringConstraints(pattern=r"^(up|drain|down)$")]


class TransitionOut(BaseModel):
    state: str
    reason: str
    at: datetime


class JobOut(BaseModel):
    id: int
    name: str
    project: str
    allocation_id: int
    submitter_id: int
    command: str
    env: dict[str, str]
    inputs: list[str]
    accelerator: str
    accelerators: int
    cpus: int
    memory_gb: int
    time_limit_minutes: int
    level: int
    partition: str
    executor: str
    executor_id: str | None
    state: str
    reason: str
    reserved_hours: Decimal
    charged_hours: Decimal | None
    exit_code: int | None
    elapsed_seconds: int | None
    resubmit_of: int | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    transitions: list[TransitionOut] = Field(default_factory=list)


class PartitionOut(BaseModel):
    name: str
    site: str
    country: str
    accelerator: str
    certified_level: int
    nodes: int
    nodes_up: int
    accelerators: int
    accelerators_up: int
    accelerators_in_use: int
    jobs_running: int
    jobs_waiting: int
    accelerators_per_node: int
    cpus_per_node: int
    memory_gb_per_node: int


class FleetOut(BaseModel):
    sites: list[dict[str, Any]]
    partitions: list[PartitionOut]
    accelerators: int
    accelerators_in_use: int
