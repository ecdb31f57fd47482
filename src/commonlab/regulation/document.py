"""The regulation as a document: what the council adopts and the rest of the system reads.

Pure data (Pydantic, no database): how capacity is split between pools, the containment-level
rules (parameters the Cedar policies take), allocation limits and the council threshold. The
contribution scale (each member state's share) is adopted separately, by its own vote.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from commonlab.bounded import Int64
from commonlab.policy.levels import Level
from commonlab.record.canonical import canonical_json

__all__ = [
    "AllocationRules",
    "CapacitySplit",
    "ContainmentRules",
    "ContributionScale",
    "LevelRules",
    "Regulation",
    "default_regulation",
    "regulation_hash",
]


def _plain(value: Decimal) -> str:
    # "50", "50.0" and "50.00" are one share, and must hash as one.
    return format(value.normalize(), "f")


Percent = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=5, decimal_places=2),
    PlainSerializer(_plain, return_type=str, when_used="json"),
]
# Shares are compared to 100 exactly: two decimals are what a treaty annex states.
_HUNDRED = Decimal(100)


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapacitySplit(_Doc):
    """Shares of the facility's accelerator capacity, in percent; they sum to 100."""

    national_pools: Percent
    open_calls: Percent
    smes_and_public_bodies: Percent
    directors_reserve: Percent

    @model_validator(mode="after")
    def _sums_to_100(self) -> CapacitySplit:
        total = self.national_pools + self.open_calls + self.smes_and_public_bodies
        total += self.directors_reserve
        if total != _HUNDRED:
            raise ValueError(f"the capacity split sums to {total}%, not 100%")
        return self

    def pools(self) -> dict[str, Decimal]:
        return self.model_dump()


class LevelRules(_Doc):
    """What one containment level requires."""

    max_clearance_days: Annotated[Int64, Field(ge=1, le=3650)]
    release_approvals: Annotated[Int64, Field(ge=0, le=10)]
    downloads: Literal["free", "logged", "never"]
    session_grant: bool = False


class ContainmentRules(_Doc):
    cl1: LevelRules = LevelRules(max_clearance_days=3650, release_approvals=0, downloads="free")
    cl2: LevelRules = LevelRules(max_clearance_days=730, release_approvals=1, downloads="logged")
    cl3: LevelRules = LevelRules(max_clearance_days=180, release_approvals=2, downloads="never")
    cl4: LevelRules = LevelRules(
        max_clearance_days=30, release_approvals=3, downloads="never", session_grant=True
    )

    def for_level(self, level: Level) -> LevelRules:
        return getattr(self, f"cl{int(level)}")

    @model_validator(mode="after")
    def _monotone(self) -> ContainmentRules:
        # A more contained level never asks for less than a less contained one.
        rules = [self.cl1, self.cl2, self.cl3, self.cl4]
        for lower, higher, name in zip(rules, rules[1:], ("CL-2", "CL-3", "CL-4"), strict=False):
            if higher.max_clearance_days > lower.max_clearance_days:
                raise ValueError(f"{name} may not allow longer clearances than the level below")
            if higher.release_approvals < lower.release_approvals:
                raise ValueError(
                    f"{name} may not need fewer release approvals than the level below"
                )
        return self


class AllocationRules(_Doc):
    council_threshold_hours: Annotated[Int64, Field(ge=0)] = 50_000
    max_request_hours: Annotated[Int64, Field(ge=1)] = 1_000_000
    carry_over_percent: Percent = Decimal(25)
    grace_margin_percent: Percent = Decimal(0)
    share_tolerance_percent: Percent = Decimal(2)


class Regulation(_Doc):
    """One version of the facility's regulation."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    capacity: CapacitySplit
    containment: ContainmentRules = Field(default_factory=ContainmentRules)
    allocation: AllocationRules = Field(default_factory=AllocationRules)
    contribution_ceiling_percent: Percent = Decimal(25)


class ContributionScale(_Doc):
    """Each member state's share of contributions, in percent (ISO 3166 codes as keys)."""

    shares: dict[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], Percent]

    def check(self, *, ceiling: Decimal, members: set[str] | None = None) -> None:
        """Raise ValueError unless the scale sums to 100% and no state exceeds the ceiling."""
        total = sum(self.shares.values(), Decimal(0))
        if total != _HUNDRED:
            raise ValueError(f"the contribution scale sums to {total}%, not 100%")
        over = sorted(code for code, share in self.shares.items() if share > ceiling)
        if over:
            raise ValueError(f"{', '.join(over)} above the ceiling of {ceiling}% per state")
        if members is not None and set(self.shares) != members:
            missing, extra = sorted(members - set(self.shares)), sorted(set(self.shares) - members)
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"not members: {', '.join(extra)}"] if extra else []
            )
            raise ValueError("the scale must list exactly the member states: " + "; ".join(parts))


def regulation_hash(regulation: Regulation) -> str:
    """SHA-256 of the document's canonical JSON: the id recorded with decisions taken under it."""
    return hashlib.sha256(canonical_json(regulation.model_dump(mode="json"))).hexdigest()


def default_regulation() -> Regulation:
    """The regulation a new facility starts from until the council adopts its own."""
    return Regulation(
        title="Provisional regulation",
        capacity=CapacitySplit(
            national_pools=Decimal(50),
            open_calls=Decimal(30),
            smes_and_public_bodies=Decimal(15),
            directors_reserve=Decimal(5),
        ),
    )
