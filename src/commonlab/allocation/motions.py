"""What a passed `approve_allocation` motion does: an allocation above the council threshold,
awaiting the vote, becomes active. Allocation owns the state, so it owns the effect;
`wiring.connect()` registers `EFFECTS` with governance's port."""

from __future__ import annotations

from sqlalchemy.orm import Session

from commonlab.allocation.service import activate_allocation, check_awaiting_council
from commonlab.governance.effects import Effect
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import ApproveAllocation
from commonlab.policy.principal import Principal

__all__ = ["EFFECTS"]


def check_approval(db: Session, p: ApproveAllocation) -> None:
    check_awaiting_council(db, p.allocation_id)


def apply_approval(db: Session, motion: Principal, p: ApproveAllocation) -> None:
    activate_allocation(db, motion, p.allocation_id)


EFFECTS = {MotionKind.APPROVE_ALLOCATION: Effect(check_approval, apply_approval)}
