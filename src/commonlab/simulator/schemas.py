"""The shape of a what-if attached to a motion: how the workload was built and, under the
regulation in force and the proposed one, the figures a motion's page shows. Bounded in every
field, so a stored comparison stays small whatever a client sends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from commonlab.bounded import Int64
from commonlab.compute.workload_export import MAX_DAYS
from commonlab.regulation.document import Percent
from commonlab.schemas import Input

__all__ = [
    "Figures",
    "PoolFigures",
    "RegulationRef",
    "Side",
    "WhatIfCreate",
    "WhatIfOut",
    "WorkloadInfo",
    "WorkloadSource",
    "window_days",
]

MAX_POOLS = 100
MAX_JOBS = 100_000_000
# The longest window of its own jobs a facility exports at once.
MAX_WINDOW = timedelta(days=MAX_DAYS)

Fraction = Annotated[float, Field(ge=0, le=1)]
Hours = Annotated[float, Field(ge=0, le=1e7)]
Count = Annotated[Int64, Field(ge=0, le=MAX_JOBS)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Line = Annotated[str, StringConstraints(max_length=1000)]
# `national:DE` for a member state's pool, else one of the regulation's split (`open_calls`).
PoolName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}(:[A-Z]{2})?$")]
Policy = Literal["fifo", "multifactor", "drf", "commonlab"]


class _Input(Input):
    # Figures a simulation computed: NaN or infinity there is a fault, not a value, and the
    # text (a hash, a note) is kept exactly as it was sent.
    model_config = ConfigDict(allow_inf_nan=False, str_strip_whitespace=False)


class PoolFigures(_Input):
    entitled: Fraction
    jobs: Count
    mean_wait_h: Hours
    p99_wait_h: Hours
    delivered: Fraction = Field(
        description="share of the accelerator-time delivered while jobs arrived or waited"
    )
    max_abs_deviation_hour: Fraction = Field(
        description="largest |delivered - entitled| share in an hour the pool had work waiting"
    )


class Figures(_Input):
    utilisation: Fraction
    idle_while_waiting_fraction: Fraction
    mean_jct_h: Hours
    p99_jct_h: Hours
    mean_wait_h: Hours
    p99_wait_h: Hours
    makespan_days: Hours
    max_shortfall_hour: Fraction = Field(
        description="largest shortfall from the fair share, in points of what was delivered, "
        "in an hour a pool had work waiting (docs/simulator.md, Metrics)"
    )
    jain_hour: Fraction
    pools: Annotated[dict[PoolName, PoolFigures], Field(min_length=1, max_length=MAX_POOLS)]


class RegulationRef(_Input):
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    sha256: Sha256
    version: Annotated[Int64, Field(ge=0, le=1_000_000)] | None = Field(
        default=None, description="the adopted version (the one in force); null for the proposal"
    )


class Side(_Input):
    regulation: RegulationRef
    figures: Figures


def window_days(start: datetime, end: datetime) -> str:
    """`2026-09-06–2026-12-06` for the window [start, end) of whole UTC days (both shown
    days included)."""
    return f"{start.date().isoformat()}–{(end - timedelta(days=1)).date().isoformat()}"


class WorkloadSource(_Input):
    """Which workload a what-if replayed: the facility's own jobs submitted in [from, to)
    (`GET /api/v1/reports/workload`), or the published trace(s) the workload names."""

    kind: Literal["facility", "trace"]
    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    jobs: Annotated[Int64, Field(ge=0, le=MAX_JOBS)] = Field(
        description="the jobs of the window (facility) or of the trace(s) before building"
    )

    @model_validator(mode="after")
    def _window(self) -> WorkloadSource:
        if self.kind == "trace":
            if self.start is not None or self.end is not None:
                raise ValueError("a published trace has no window of the facility's: drop from/to")
            return self
        if self.start is None or self.end is None:
            raise ValueError("the facility's own jobs: name the window, from and to")
        if not self.start < self.end <= self.start + MAX_WINDOW:
            raise ValueError(
                f"to must be after from, by at most {MAX_WINDOW.days} days (the export's window)"
            )
        return self

    def describe(self, traces: list[str]) -> str:
        """What a motion's page says was replayed."""
        if self.kind == "facility" and self.start is not None and self.end is not None:
            return (
                f"replays the facility's own jobs of {window_days(self.start, self.end)}, "
                f"{self.jobs:,} jobs"
            )
        return f"a published trace: {', '.join(traces)} ({self.jobs:,} jobs)"


class WorkloadInfo(_Input):
    traces: Annotated[list[Line], Field(min_length=1, max_length=20)]
    jobs: Annotated[Int64, Field(ge=1, le=MAX_JOBS)]
    accelerators_requested: Annotated[Int64, Field(ge=0, le=2**53)]
    submission_hours: Hours
    fleet_accelerators: Annotated[Int64, Field(ge=1, le=MAX_JOBS)]
    how: Annotated[list[Line], Field(max_length=40)]
    set_aside: Annotated[dict[Line, Count], Field(max_length=20)] = {}
    contribution_scale: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")], Percent],
        Field(max_length=MAX_POOLS),
    ]
    # Absent from what-ifs attached before the facility's own jobs could be replayed.
    source: WorkloadSource | None = None


class WhatIfCreate(_Input):
    """What `commonlab simulate --motion N` attaches: the same workload under both rules."""

    policy: Policy
    workload: WorkloadInfo
    in_force: Side
    proposed: Side

    def no_difference(self) -> str | None:
        """Why the two sides cannot tell the regulations apart, when they cannot: no job
        waited under either (a workload this light never tests a share), or every figure is
        the same. None when the comparison shows something."""
        before, after = self.in_force.figures, self.proposed.figures
        if before.mean_wait_h == 0 and after.mean_wait_h == 0:
            return (
                "no job waited under either regulation: the workload is too light to show any "
                "difference between them (every pool got what it asked for at once)"
            )
        if _outcomes(before) == _outcomes(after):
            return (
                "every figure is the same under both regulations: the workload shows no difference"
            )
        return None


def _outcomes(figures: Figures) -> dict[str, object]:
    """What a regulation changed: every figure but the entitlements it sets."""
    return figures.model_dump(exclude={"pools": {"__all__": {"entitled"}}})


class WhatIfOut(BaseModel):
    id: int
    motion_id: int
    sha256: str
    attached_by: str
    attached_at: datetime
    document: WhatIfCreate
