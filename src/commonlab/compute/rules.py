"""The compute rules, pure: the job lifecycle, what a job reserves and is charged, and which
partition a job may be placed on. No database, no executor."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "CHECKPOINT_METRIC",
    "TERMINAL",
    "JobState",
    "PartitionView",
    "Shape",
    "can_move",
    "charge_hours",
    "check_nodes",
    "place",
    "reserve_hours",
]

# The metric a job's run posts each time it saves a checkpoint (its value: the step saved;
# `workloads/runtime/loop.py` writes it). The share controller reads when a job last posted
# it: a job requeued to hold shares loses the work since, so those that lose least go first.
CHECKPOINT_METRIC = "checkpoint_step"


class JobState(StrEnum):
    ADMITTED = "admitted"  # passed admission; hours held; not yet with the executor
    QUEUED = "queued"  # with the executor (or waiting for a local slot)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REFUSED = "refused"  # the executor would not take it (e.g. Slurm refused the account)


TERMINAL = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT, JobState.REFUSED}
)

_NEXT: dict[JobState, frozenset[JobState]] = {
    JobState.ADMITTED: frozenset({JobState.QUEUED, JobState.CANCELLED, JobState.REFUSED}),
    JobState.QUEUED: frozenset(
        {JobState.RUNNING, JobState.CANCELLED, JobState.REFUSED, JobState.FAILED}
        | {JobState.SUCCEEDED, JobState.TIMED_OUT}  # a short job can finish between two polls
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
    ),
}


def can_move(current: JobState, target: JobState) -> bool:
    return target in _NEXT.get(current, frozenset())


# One ledger unit is 0.01 accelerator-hours (36 accelerator-seconds): the ledger keeps two
# decimals, and a job that ran at all is charged at least one unit.
_UNIT_SECONDS = 36


def reserve_hours(accelerators: int, time_limit_minutes: int, *, nodes: int = 1) -> Decimal:
    """What admission holds: every requested accelerator, on each of its nodes, for the
    whole time limit."""
    units = math.ceil(nodes * accelerators * time_limit_minutes * 60 / _UNIT_SECONDS)
    return Decimal(units) / 100


def charge_hours(accelerators: int, elapsed_seconds: int, reserved: Decimal) -> Decimal:
    """What a finished job is charged: accelerators times elapsed time, rounded up to the
    ledger's unit, never more than was reserved (the executor enforces the time limit; a
    few seconds of teardown past it are not the researcher's to pay)."""
    if elapsed_seconds <= 0 or accelerators <= 0:
        return Decimal(0)
    units = math.ceil(accelerators * elapsed_seconds / _UNIT_SECONDS)
    return min(Decimal(units) / 100, reserved)


@dataclass(frozen=True)
class Shape:
    """What a job asks of one partition (a job runs on whole nodes or part of one). On
    several nodes, `accelerators`, `cpus` and `memory_gb` are what it asks of each node."""

    accelerator: str
    accelerators: int
    cpus: int
    memory_gb: int
    nodes: int = 1


@dataclass(frozen=True)
class PartitionView:
    id: int
    name: str
    accelerator: str
    certified_level: int
    nodes: int
    nodes_up: int
    accelerators_per_node: int
    cpus_per_node: int
    memory_gb_per_node: int


def _fits(shape: Shape, p: PartitionView) -> bool:
    if p.nodes_up <= 0:
        return False
    if shape.nodes > 1:
        # One task a node (Slurm's --ntasks-per-node=1): each node must hold the whole shape.
        return (
            shape.nodes <= p.nodes_up
            and shape.accelerators <= max(p.accelerators_per_node, 1)
            and shape.cpus <= p.cpus_per_node
            and shape.memory_gb <= p.memory_gb_per_node
        )
    if p.accelerators_per_node == 0:
        nodes = 1
    else:
        nodes = math.ceil(shape.accelerators / p.accelerators_per_node)
    return (
        nodes <= p.nodes_up
        and shape.cpus <= nodes * p.cpus_per_node
        and shape.memory_gb <= nodes * p.memory_gb_per_node
    )


def check_nodes(
    nodes: int, accelerator: str, partitions: Iterable[PartitionView], *, executor_limit: int | None
) -> None:
    """Whether a job may ask for `nodes` nodes of `accelerator` at all: no more than the
    executor runs one job on (`executor_limit`, None: no limit of its own) and no more than
    the largest partition of the class has. Raises ValueError naming the limit; nodes that
    exist but are down or busy are placement's business, not this."""
    if nodes <= 1:
        return
    if executor_limit is not None and nodes > executor_limit:
        raise ValueError(
            f"nodes: this facility's executor runs a job on at most {executor_limit} "
            f"node{'s' if executor_limit != 1 else ''}, and this one asks for {nodes}; "
            "ask for one node (several nodes need a Slurm facility)"
        )
    of_class = [p for p in partitions if p.accelerator == accelerator]
    if not of_class:
        return  # placement says that no partition has the class
    largest = max(of_class, key=lambda p: (p.nodes, p.name))
    if nodes > largest.nodes:
        raise ValueError(
            f"nodes: {nodes} is more than any {accelerator} partition has; the largest, "
            f"{largest.name}, has {largest.nodes} node{'s' if largest.nodes != 1 else ''}: "
            f"ask for at most {largest.nodes}"
        )


def place(shape: Shape, level: int, partitions: Iterable[PartitionView]) -> PartitionView:
    """The partition a job goes to: the requested class, certified at or above the job's level,
    big enough for it; among those the least contained (contained capacity is scarce).
    Raises ValueError with the reason a person can act on."""
    of_class = [p for p in partitions if p.accelerator == shape.accelerator]
    if not of_class:
        raise ValueError(f"no partition has {shape.accelerator} accelerators")
    certified = [p for p in of_class if p.certified_level >= level]
    if not certified:
        best = max(p.certified_level for p in of_class)
        raise ValueError(
            f"no {shape.accelerator} partition is certified for CL-{level} "
            f"(the highest is CL-{best}); the council certifies partitions by motion"
        )
    fitting = [p for p in certified if _fits(shape, p)]
    if not fitting:
        biggest = max(certified, key=lambda p: p.nodes_up * max(p.accelerators_per_node, 1))
        raise ValueError(
            f"no {shape.accelerator} partition certified for CL-{level} is big enough: "
            f"{biggest.name} has {biggest.nodes_up} nodes up of {biggest.accelerators_per_node} "
            f"accelerators, {biggest.cpus_per_node} CPUs and {biggest.memory_gb_per_node} GB each"
        )
    return min(fitting, key=lambda p: (p.certified_level, p.name))
