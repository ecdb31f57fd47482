"""Compute input and output shapes: job specs, jobs, the metrics a job posts, the fleet."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from commonlab.bounded import MAX_ID, Int64
from commonlab.compute.rules import CHECKPOINT_METRIC, JobState
from commonlab.errors import InvalidInput
from commonlab.policy.levels import Level
from commonlab.schemas import Input

__all__ = [
    "CHECKPOINT_METRIC",
    "MAX_METRIC_NAMES",
    "MAX_METRIC_POINTS",
    "METRIC_NAME",
    "FleetOut",
    "JobCreate",
    "JobMetricsCreate",
    "JobMetricsOut",
    "JobMetricsWrittenOut",
    "JobOut",
    "JobState",
    "LatestMetricOut",
    "MetricPoint",
    "NodeStateUpdate",
    "PartitionOut",
    "TransitionOut",
    "metric_names",
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
    cores); `cpus` defaults to one per accelerator. `nodes` above 1 runs the job on that many
    nodes, one task each, and `accelerators`, `cpus` and `memory_gb` are then each node's
    (admission bounds it by the largest partition of the class and by the executor)."""

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
    nodes: Annotated[Int64, Field(ge=1, le=100_000)] = 1
    time_limit_minutes: Annotated[Int64, Field(ge=1, le=43_200)] = 60
    level: Level = Level.CL1

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: object) -> Level:
        return Level.parse(value)


# Metrics a job posts while it runs ------------------------------------------------------------

MAX_METRIC_POINTS = 1000  # points in one request
MAX_METRIC_NAMES = 32  # names in one request
METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]{0,63}$")
# Finite numbers only, and never a string that looks like one ("NaN", "1e3").
MetricValue = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Step = Annotated[int, Strict(), Field(ge=0, le=MAX_ID)]
# Unix seconds, within what every database's timestamp holds (up to the year 9999).
UnixTime = Annotated[float, Strict(), Field(ge=0, le=253_402_300_799, allow_inf_nan=False)]


def _check_metric_name(name: str) -> str:
    if not METRIC_NAME.match(name):
        raise ValueError(
            f"{name[:80]!r} is not a metric name: use a letter or _ first, then letters, "
            "digits, _ . / -, at most 64 characters (like loss or eval/accuracy)"
        )
    return name


class MetricPoint(Input):
    """One step of a job's work: `step`, optionally `time` (Unix seconds, else when it
    arrived), and any metrics by name, each a finite number or null (no value at this
    step), e.g. {"step": 10, "loss": 2.31, "learning_rate": 0.0003}."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, MetricValue | None] = Field(init=False)

    step: Step
    time: UnixTime | None = None

    @model_validator(mode="after")
    def _names(self) -> MetricPoint:
        if not self.values:
            raise ValueError("a point needs at least one metric beside step and time")
        for name in self.values:
            _check_metric_name(name)
        return self

    @property
    def values(self) -> dict[str, float | None]:
        return dict(self.__pydantic_extra__ or {})


class JobMetricsCreate(Input):
    """Points a job posts (at most 1000, naming at most 32 metrics); a step sent again
    replaces what was there, so a client may resend a batch it is unsure arrived."""

    points: Annotated[list[MetricPoint], Field(min_length=1, max_length=MAX_METRIC_POINTS)]

    @model_validator(mode="after")
    def _few_names(self) -> JobMetricsCreate:
        names = {name for point in self.points for name in point.values}
        if len(names) > MAX_METRIC_NAMES:
            raise ValueError(
                f"the points name {len(names)} metrics; send at most {MAX_METRIC_NAMES} per request"
            )
        return self


def metric_names(values: Iterable[str]) -> list[str]:
    """Names asked for in a query (`names=loss&names=learning_rate` or
    `names=loss,learning_rate`), each checked; InvalidInput names the one to fix."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            try:
                _check_metric_name(name)
            except ValueError as exc:
                raise InvalidInput(f"names: {exc}") from None
            if name not in names:
                names.append(name)
    if len(names) > MAX_METRIC_NAMES:
        raise InvalidInput(f"names: ask for at most {MAX_METRIC_NAMES} metrics at once")
    return names


class JobMetricsWrittenOut(BaseModel):
    job_id: int
    points: int
    values: int  # one per metric per point


class LatestMetricOut(BaseModel):
    step: int
    value: float
    time: float


class JobMetricsOut(BaseModel):
    """A page of a job's metrics, one point per step in the shape they are posted in, and
    each metric's latest value whatever the page."""

    job_id: int
    names: list[str] = Field(description="every metric the job has posted")
    latest: dict[str, LatestMetricOut] = Field(
        description="each asked-for metric's value at the last step it had one"
    )
    points: list[dict[str, float | int | None]]
    next_after_step: int | None = Field(
        description="pass as `after_step` to get the next page; null at the end"
    )


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
    nodes: int = Field(
        description="nodes it runs on; accelerators, cpus and memory_gb are each node's"
    )
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
