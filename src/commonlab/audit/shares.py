"""The allocation figures the facility publishes, defined again for the audit as pure
functions: the share report (each member state's delivered against entitled share, with the
tolerance band), calendar quarters, and an allocation's quarterly tranches. Written from the
facility's published definitions, never imported from its code (see audit/__init__.py)."""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

__all__ = [
    "CENT",
    "ZERO",
    "Span",
    "add_months",
    "hours_text",
    "last_quarters",
    "quarter_of",
    "share_report",
    "tranche_index",
    "tranche_split",
]

ZERO = Decimal(0)
CENT = Decimal("0.01")
Span = tuple[date, date]  # [start, end)


def share_report(
    delivered: Mapping[str, Decimal],
    *,
    members: Iterable[str],
    scale: Mapping[str, Decimal],
    tolerance: Decimal,
    span: Span,
) -> dict[str, Any]:
    """The share report as GET /api/v1/reports/shares publishes it, from the hours delivered
    per country over the span: each member state's (and each state on the scale's) entitled
    percent, hours, percent of what member states received (two decimals), deviation in
    points and whether it lies outside the band; non-member countries apart."""
    members = set(members)
    mine = {code: ZERO for code in members}
    outside: dict[str, Decimal] = {}
    for country, hours in delivered.items():
        (mine if country in members else outside)[country] = hours
    total = sum(mine.values(), ZERO)
    states = []
    for code in sorted(mine.keys() | scale.keys()):
        hours = mine.get(code, ZERO)
        percent = (hours * 100 / total).quantize(CENT) if total else ZERO
        entitled = scale.get(code, ZERO)
        deviation = percent - entitled
        states.append(
            {
                "code": code,
                "entitled_percent": str(entitled),
                "delivered_hours": hours_text(hours),
                "delivered_percent": str(percent),
                "deviation": str(deviation),
                "outside_band": bool(total > 0 and abs(deviation) > tolerance),
            }
        )
    return {
        "start": span[0].isoformat(),
        "end": span[1].isoformat(),
        "tolerance_percent": format(tolerance.normalize(), "f"),
        "states": states,
        "outside_members": [
            {"country": country, "delivered_hours": hours_text(hours)}
            for country, hours in sorted(outside.items())
        ],
    }


def quarter_of(day: date) -> Span:
    """The calendar quarter `day` falls in."""
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return start, add_months(start, 3)


def last_quarters(today: date, count: int = 4) -> list[Span]:
    """The calendar quarter of `today` and the `count - 1` before it, oldest first."""
    spans = [quarter_of(today)]
    while len(spans) < count:
        spans.append(quarter_of(spans[-1][0] - timedelta(days=1)))
    return spans[::-1]


def tranche_split(total: Decimal, starts: date, ends: date) -> list[tuple[date, date, Decimal]]:
    """An allocation's budget of one class released in quarterly tranches over [starts, ends):
    quarters anchored on the start day, each its share of the days to the hundredth, the last
    taking what rounding left so the tranches sum to the budget."""
    bounds = [starts]
    while bounds[-1] < ends:
        bounds.append(min(add_months(starts, 3 * len(bounds)), ends))
    days = (ends - starts).days
    out, given = [], ZERO
    for i, (a, b) in enumerate(pairwise(bounds)):
        last = i == len(bounds) - 2
        hours = total - given if last else (total * (b - a).days / days).quantize(CENT)
        given += hours
        out.append((a, b, hours))
    return out


def tranche_index(starts: date, ends: date, on: date) -> int | None:
    """Which tranche of an allocation over [starts, ends) the day `on` falls in."""
    if not starts <= on < ends:
        return None
    index = 0
    while add_months(starts, 3 * (index + 1)) <= on:
        index += 1
    return index


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def hours_text(hours: Decimal) -> str:
    """Hours as the facility prints a sum of ledger lines: to the hundredth, or 0 for none."""
    return str(hours.quantize(CENT)) if hours else "0"
