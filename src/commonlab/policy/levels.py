"""Containment levels (DESIGN.md, "Containment levels"): the four labels every securable
thing carries, and the clearance a person holds to reach them."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

__all__ = [
    "Clearance",
    "Level",
    "can_place",
    "can_read",
    "can_write",
    "epoch_seconds",
    "output_level",
    "placement_denial",
    "read_denials",
    "write_denials",
]


class Level(IntEnum):
    """A containment level. Higher is more contained; compare with <, >=."""

    CL1 = 1  # open
    CL2 = 2  # controlled
    CL3 = 3  # contained
    CL4 = 4  # high containment

    @classmethod
    def parse(cls, value: object) -> Level:
        """Accept 1..4, "CL-3", "cl3", "3"; anything else is a ValueError naming the forms."""
        text = str(value).strip().upper().replace("-", "").removeprefix("CL")
        if text in {"1", "2", "3", "4"}:
            return cls(int(text))
        raise ValueError(f"unknown containment level {value!r}: use CL-1, CL-2, CL-3 or CL-4")

    @property
    def label(self) -> str:
        return f"CL-{int(self)}"


@dataclass(frozen=True)
class Clearance:
    """What a person may reach: a level, the compartments within it, and until when."""

    level: Level
    expires_at: datetime
    compartments: frozenset[str] = field(default_factory=frozenset)


# The rules below are the lattice in plain Python. The Cedar policies in policies/ decide;
# these say *why* a request was denied, and tests check that the two always agree.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_seconds(moment: datetime) -> int:
    """Whole seconds since 1970 (floored); a naive datetime is taken as UTC.

    Cedar has no datetimes here, so both Cedar and these rules compare these integers.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(seconds=1)


def output_level(*levels: Level) -> Level:
    """The level of what a job writes: at least as contained as its inputs and its project."""
    if not levels:
        # Fail closed: with no inputs named we cannot know how contained the output must be.
        raise ValueError("output_level needs the levels of the job's inputs and its project")
    return max(Level(level) for level in levels)


def read_denials(
    clearance: Clearance | None,
    level: Level,
    compartments: Set[str] = frozenset(),
    *,
    now: datetime,
    project: str | None = None,
    projects: Set[str] = frozenset(),
    session_grant: bool = False,
) -> list[str]:
    """Why a holder of `clearance` may not read a thing at `level`; empty when they may.

    CL-1 is open to anyone. Above it: clearance level at least the thing's, unexpired,
    covering its compartments, membership of its project, and at CL-4 a session grant.
    """
    if level <= Level.CL1:
        return []
    reasons: list[str] = []
    if clearance is None:
        reasons.append(
            f"you hold no clearance; this resource is {level.label} — "
            f"ask a safety officer for a {level.label} clearance"
        )
    else:
        if clearance.level < level:
            reasons.append(
                f"your clearance {clearance.level.label} is below this resource's {level.label}"
            )
        if epoch_seconds(now) >= epoch_seconds(clearance.expires_at):
            reasons.append(
                f"your clearance expired on {_when(clearance.expires_at)} — "
                "ask a safety officer to renew it"
            )
    held = clearance.compartments if clearance is not None else frozenset()
    if missing := sorted(set(compartments) - set(held)):
        noun = "compartment" if len(missing) == 1 else "compartments"
        reasons.append(f"you lack {noun} {', '.join(repr(c) for c in missing)}")
    if project is not None and project not in projects:
        reasons.append(f"you are not a member of project {project}")
    if level >= Level.CL4 and not session_grant:
        reasons.append("CL-4 access needs a per-session grant; request one for this session")
    return reasons


def can_read(
    clearance: Clearance | None,
    level: Level,
    compartments: Set[str] = frozenset(),
    *,
    now: datetime,
    project: str | None = None,
    projects: Set[str] = frozenset(),
    session_grant: bool = False,
) -> bool:
    """True when `read_denials` finds nothing."""
    return not read_denials(
        clearance,
        level,
        compartments,
        now=now,
        project=project,
        projects=projects,
        session_grant=session_grant,
    )


def write_denials(
    clearance: Clearance | None,
    level: Level,
    compartments: Set[str] = frozenset(),
    *,
    data_level: Level | None,
    now: datetime,
    project: str | None = None,
    projects: Set[str] = frozenset(),
    session_grant: bool = False,
) -> list[str]:
    """Why data at `data_level` may not be written into a thing at `level`; empty when it may.

    Writing needs the same reach as reading, and no write-down: data never lands in a less
    contained place than it came from (lowering a level is an approved release, not a write).
    """
    reasons = read_denials(
        clearance,
        level,
        compartments,
        now=now,
        project=project,
        projects=projects,
        session_grant=session_grant,
    )
    if data_level is None:
        reasons.append("a write must say the level of the data being written (data_level)")
    elif data_level > level:
        reasons.append(
            f"writing {data_level.label} data into this {level.label} resource would lower "
            f"its containment (no write-down); write it into a resource at {data_level.label} "
            "or above, or have it released"
        )
    return reasons


def can_write(
    clearance: Clearance | None,
    level: Level,
    compartments: Set[str] = frozenset(),
    *,
    data_level: Level | None,
    now: datetime,
    project: str | None = None,
    projects: Set[str] = frozenset(),
    session_grant: bool = False,
) -> bool:
    """True when `write_denials` finds nothing."""
    return not write_denials(
        clearance,
        level,
        compartments,
        data_level=data_level,
        now=now,
        project=project,
        projects=projects,
        session_grant=session_grant,
    )


def placement_denial(job_level: Level | None, partition_level: Level) -> str | None:
    """Why a job at `job_level` may not run on a partition certified for `partition_level`."""
    if job_level is None:
        return "placing a job must say the job's level (job_level)"
    if job_level > partition_level:
        return (
            f"this {job_level.label} job cannot run on a partition certified only for "
            f"{partition_level.label}; place it on one certified {job_level.label} or above"
        )
    return None


def can_place(job_level: Level | None, partition_level: Level) -> bool:
    """Placement only on partitions certified at or above the job's level."""
    return placement_denial(job_level, partition_level) is None


def _when(moment: datetime) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%d %H:%M UTC")
