"""The record entries the governance domain writes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["GovernanceEvent"]


class GovernanceEvent(StrEnum):
    CouncilFounded = "governance:council:founded"
    DelegateAppointed = "governance:delegate:appointed"
    DelegateEnded = "governance:delegate:ended"
    MotionTabled = "governance:motion:tabled"
    VoteCast = "governance:vote:cast"
    MotionDecided = "governance:motion:decided"
    MemberAdmitted = "governance:member:admitted"
    MemberRemoved = "governance:member:removed"
    ScaleAdopted = "governance:scale:adopted"
    RegulationAdopted = "governance:regulation:adopted"
