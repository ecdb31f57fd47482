"""What the operator's instruments read of the ledger at scrape time
(operations/instruments.py): the hours open reservations hold. Read-only."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.allocation.models import Allocation, Balance

__all__ = ["held_hours"]


def held_hours(db: Session) -> dict[str, Decimal]:
    """Hours held by open reservations, per accelerator class, read from the running
    balances (one row per allocation, class and quarter, not the ledger's lines). Only
    top-level allocations: a sub-allocation's holds count toward its parent's too."""
    query = (
        select(Balance.accelerator, func.sum(Balance.held))
        .join(Allocation, Allocation.id == Balance.allocation_id)
        .where(Allocation.parent_id.is_(None))
        .group_by(Balance.accelerator)
    )
    with db.begin():
        return {cls: Decimal(str(held or 0)) for cls, held in db.execute(query)}
