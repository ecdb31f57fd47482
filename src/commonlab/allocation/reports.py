"""Reports over the ledger: hours delivered per member state against each state's entitled
share (the regulation's tolerance band), and awarded versus delivered hours per member state,
institution, call or project."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.allocation import rules
from commonlab.allocation.access import ALLOCATION
from commonlab.allocation.models import Allocation, Charge, Proposal
from commonlab.allocation.rules import ZERO, budget_hours
from commonlab.errors import InvalidInput
from commonlab.governance.service import active_codes, current_shares
from commonlab.identity import service as identity
from commonlab.policy import Action, authorize
from commonlab.policy.principal import Principal
from commonlab.regulation.service import in_force as regulation_in_force

__all__ = [
    "OUTSIDE_MEMBERS",
    "REPORT_GROUPS",
    "delivered_hours",
    "share_accounting",
    "usage_report",
]


def delivered_hours(db: Session, *, start: date, end: date) -> dict[str, Decimal]:
    """Hours settled in [start, end) per country of the allocations' institutions (in the
    caller's transaction): what each member state was delivered."""
    rows = db.execute(
        select(Allocation.country, func.sum(Charge.hours))
        .join(Allocation, Allocation.id == Charge.allocation_id)
        .where(Charge.kind == "settle", Charge.on >= start, Charge.on < end)
        .group_by(Allocation.country)
    ).all()
    return {country: Decimal(hours or 0) for country, hours in rows if country}


def share_accounting(db: Session, actor: Principal, *, start: date, end: date) -> dict[str, Any]:
    """Delivered versus entitled share per member state over [start, end)."""
    with db.begin():
        authorize(actor, Action.AllocationRead, ALLOCATION)
        members = active_codes(db)
        delivered: dict[str, Decimal] = {code: ZERO for code in members}
        # Hours delivered to institutions of other countries come from the facility's open
        # share, not from any member state's: shown apart, never counted in a state's share.
        outside: dict[str, Decimal] = {}
        for country, hours in delivered_hours(db, start=start, end=end).items():
            (delivered if country in members else outside)[country] = hours
        tolerance = regulation_in_force(db).regulation.allocation.share_tolerance_percent
        lines = rules.share_report(delivered, current_shares(db), tolerance=tolerance)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tolerance_percent": format(tolerance.normalize(), "f"),
        "states": [
            {
                "code": line.code,
                "entitled_percent": str(line.entitled_percent),
                "delivered_hours": str(line.delivered_hours),
                "delivered_percent": str(line.delivered_percent),
                "deviation": str(line.deviation),
                "outside_band": line.outside_band,
            }
            for line in lines
        ],
        "outside_members": [
            {"country": country, "delivered_hours": str(hours)}
            for country, hours in sorted(outside.items())
        ],
    }


REPORT_GROUPS = ("member", "institution", "call", "project")


# The group `usage_report(by="member")` puts allocations of non-member countries in.
OUTSIDE_MEMBERS = "outside the member states"


def usage_report(
    db: Session, actor: Principal, *, by: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Awarded budget and hours delivered over [start, end), per member state, institution,
    call or project (top-level projects; a sub-allocation counts towards its parent)."""
    if by not in REPORT_GROUPS:
        raise InvalidInput(f"group by one of {', '.join(REPORT_GROUPS)}")
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        tops = db.scalars(
            select(Allocation).where(Allocation.parent_id.is_(None), Allocation.status == "active")
        ).all()
        calls = {pid: cid for pid, cid in db.execute(select(Proposal.id, Proposal.call_id))}
        names = identity.institution_names(db)
        children: dict[int, int] = {
            child: parent
            for child, parent in db.execute(
                select(Allocation.id, Allocation.parent_id).where(Allocation.parent_id.is_not(None))
            )
        }
        delivered: dict[int, Decimal] = defaultdict(Decimal)
        for allocation_id, hours in db.execute(
            select(Charge.allocation_id, func.sum(Charge.hours))
            .where(Charge.kind == "settle", Charge.on >= start, Charge.on < end)
            .group_by(Charge.allocation_id)
        ):
            delivered[children.get(allocation_id, allocation_id)] += Decimal(hours or 0)
        members = active_codes(db)
    rows: dict[str, dict[str, Any]] = {}
    for a in tops:
        key = {
            # Institutions of other countries draw on the open share, not a state's.
            "member": a.country if a.country in members else OUTSIDE_MEMBERS,
            "institution": names.get(a.institution_id, "—"),
            "call": f"call/{calls.get(a.proposal_id, '—')}",
            "project": a.project,
        }[by]
        row = rows.setdefault(
            key, {"group": key, "allocations": 0, "budget_hours": ZERO, "delivered_hours": ZERO}
        )
        row["allocations"] += 1
        row["budget_hours"] += sum(budget_hours(a.budget).values(), ZERO)
        row["delivered_hours"] += delivered.get(a.id, ZERO)
    return [
        {
            **row,
            "budget_hours": str(row["budget_hours"]),
            "delivered_hours": str(row["delivered_hours"]),
        }
        for row in sorted(rows.values(), key=lambda r: r["group"])
    ]
