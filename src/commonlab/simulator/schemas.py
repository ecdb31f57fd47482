"""The shape of a what-if attached to a motion: how the workload was built and, under the
regulation in force and the proposed one, the figures a motion's page shows. Bounded in every
field, so a stored comparison stays small whatever a client sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from commonlab.bounded import Int64
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
]

MAX_POOLS = 100
MAX_JOBS = 100_000_000

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


class WhatIfCreate(_Input):
    """What `commonlab simulate --motion N` attaches: the same workload under both rules."""

    policy: Policy
    workload: WorkloadInfo
    in_force: Side
    proposed: Side


class WhatIfOut(BaseModel):
    id: int
    motion_id: int
    sha256: str
    attached_by: str
    attached_at: datetime
    document: WhatIfCreate
