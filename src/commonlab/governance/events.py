"""The record entries the governance domain writes, and what each may say in clear.

The council acts in public: motions, votes, members, scales and regulations are all in clear
(delegates hold a public role, so their names are too).
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "GovernanceEvent"]


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


_DELEGATE = Fields("delegate", "name")

FIELDS = declare(
    GovernanceEvent,
    {
        GovernanceEvent.CouncilFounded: Fields("members", "scale"),
        GovernanceEvent.DelegateAppointed: _DELEGATE,
        GovernanceEvent.DelegateEnded: _DELEGATE,
        GovernanceEvent.MotionTabled: Fields(
            "kind", "title", "payload", "rule", "for", "opens_at", "closes_at"
        ),
        GovernanceEvent.VoteCast: Fields("member", "choice", "changed"),
        GovernanceEvent.MotionDecided: Fields("status", "outcome", "roll_call", "closed_early"),
        GovernanceEvent.MemberAdmitted: Fields("name", "motion"),
        GovernanceEvent.MemberRemoved: Fields("motion"),
        GovernanceEvent.ScaleAdopted: Fields("shares", "motion"),
        GovernanceEvent.RegulationAdopted: Fields("version", "sha256", "motion"),
    },
)
