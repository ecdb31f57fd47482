"""Allocation rules, pure: conflicts of interest, quarterly tranches with carry-over, what a
charge may draw, sub-allocation bounds, and member-state share accounting.

No database and no clock: the service passes in what it read and the date it acts on.
Hours are Decimals (accelerator-hours, two decimals); a budget maps accelerator class → hours.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any

__all__ = [
    "ZERO",
    "Candidate",
    "Quarter",
    "ShareLine",
    "available_hours",
    "budget_hours",
    "budget_text",
    "check_sub_allocation",
    "conflicts",
    "quarters",
    "share_report",
]

ZERO = Decimal(0)
Budget = Mapping[str, Decimal]


def budget_hours(budget: Mapping[str, Any]) -> dict[str, Decimal]:
    """A budget as the tables keep it (class → hours as text) in Decimal hours."""
    return {cls: Decimal(str(h)) for cls, h in budget.items()}


def budget_text(budget: Budget) -> dict[str, str]:
    """A budget as the tables and the record keep it: hours as plain text, classes sorted."""
    return {cls: format(h.normalize(), "f") for cls, h in sorted(budget.items())}


# Conflicts of interest -----------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """What review assignment knows about a would-be reviewer."""

    person_id: int
    institution_id: int | None
    country: str | None


def conflicts(
    reviewer: Candidate,
    *,
    pi: Candidate,
    team: Iterable[int],
    co_authors: Iterable[int],
    declared: Iterable[int],
    exclude_same_country: bool,
    institution_id: int | None = None,
) -> list[str]:
    """Every reason `reviewer` may not review this proposal (empty when free to).

    `declared` is whom the reviewer declared a conflict with; `institution_id` is the
    proposal's own (its PI's when submitted, which the PI's may since have left).
    """
    team = set(team)
    reasons = []
    if reviewer.person_id == pi.person_id or reviewer.person_id in team:
        reasons.append("named on the proposal")
    if reviewer.institution_id is not None and reviewer.institution_id == pi.institution_id:
        reasons.append("same institution as the PI")
    elif reviewer.institution_id is not None and reviewer.institution_id == institution_id:
        reasons.append("same institution as the proposal")
    if reviewer.person_id in set(co_authors):
        reasons.append("co-author of the PI")
    if set(declared) & {pi.person_id, *team}:
        reasons.append("declared a conflict")
    if exclude_same_country and reviewer.country is not None and reviewer.country == pi.country:
        reasons.append("same country as the PI (the call's rule)")
    return reasons


# Tranches and charges ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarter:
    index: int
    starts: date
    ends: date  # exclusive
    hours: Decimal


def quarters(total: Decimal, starts: date, ends: date) -> list[Quarter]:
    """Split `total` hours into quarterly tranches over [starts, ends), by the days in each.

    The last tranche takes the rounding remainder, so the tranches always sum to `total`.
    """
    if ends <= starts:
        raise ValueError("an allocation must end after it starts")
    bounds = [starts]
    while bounds[-1] < ends:
        # Anchored on the start date, so a 31 January start keeps its day where months allow.
        bounds.append(min(_add_months(starts, 3 * len(bounds)), ends))
    days = (ends - starts).days
    out, given = [], ZERO
    for i, (a, b) in enumerate(pairwise(bounds)):
        last = i == len(bounds) - 2
        share = total - given if last else (total * (b - a).days / days).quantize(Decimal("0.01"))
        given += share
        out.append(Quarter(i, a, b, share))
    return out


def quarter_index(starts: date, ends: date, on: date) -> int | None:
    """Which tranche of `quarters(..., starts, ends)` the day `on` falls in, or None."""
    if not starts <= on < ends:
        return None
    index = 0
    while _add_months(starts, 3 * (index + 1)) <= on:
        index += 1
    return index


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def available_hours(
    tranches: list[Quarter],
    drawn_by_quarter: Mapping[int, Decimal],
    *,
    on: date,
    carry_over_percent: Decimal,
) -> Decimal:
    """Hours that may still be drawn on `on`: this quarter's tranche plus what the carry-over
    rule brings forward from earlier quarters, less what this quarter already drew."""
    current = next((q for q in tranches if q.starts <= on < q.ends), None)
    if current is None:
        return ZERO
    carried = ZERO
    for q in tranches[: current.index]:
        unused = q.hours + carried - drawn_by_quarter.get(q.index, ZERO)
        # Only a share of what was left may move on; an overdrawn quarter carries nothing.
        carried = max(ZERO, unused) * carry_over_percent / 100
    return current.hours + carried - drawn_by_quarter.get(current.index, ZERO)


def check_sub_allocation(parent: Budget, siblings: Iterable[Budget], new: Budget) -> None:
    """Raise ValueError when the new sub-allocation would take a parent past its budget."""
    for cls, hours in new.items():
        if hours <= 0:
            raise ValueError(f"{cls}: a sub-allocation needs a positive number of hours")
        if cls not in parent:
            raise ValueError(f"the parent allocation has no {cls} hours")
        taken = sum((s.get(cls, ZERO) for s in siblings), ZERO)
        if taken + hours > parent[cls]:
            left = parent[cls] - taken
            raise ValueError(f"{cls}: {hours} h asked, only {left} h of the parent are unassigned")


# Member-state shares -------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareLine:
    code: str
    entitled_percent: Decimal
    delivered_hours: Decimal
    delivered_percent: Decimal
    deviation: Decimal  # delivered - entitled, in percentage points
    outside_band: bool


def share_report(
    delivered: Mapping[str, Decimal], entitled: Mapping[str, Decimal], *, tolerance: Decimal
) -> list[ShareLine]:
    """Delivered versus entitled share per member state (percent of what members received)."""
    total = sum(delivered.values(), ZERO)
    lines = []
    for code in sorted(entitled.keys() | delivered.keys()):
        hours = delivered.get(code, ZERO)
        percent = (hours * 100 / total).quantize(Decimal("0.01")) if total else ZERO
        wanted = entitled.get(code, ZERO)
        deviation = percent - wanted
        lines.append(
            ShareLine(
                code, wanted, hours, percent, deviation, total > 0 and abs(deviation) > tolerance
            )
        )
    return lines
