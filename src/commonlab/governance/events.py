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


def _delegate(about: str) -> Fields:
    return Fields("delegate", "name", about=about)


FIELDS = declare(
    GovernanceEvent,
    {
        GovernanceEvent.CouncilFounded: Fields(
            "members",
            "scale",
            "regulation",  # schema 2: the regulation in force at founding (version 0)
            about="the founding member states, their contribution scale and the regulation "
            "in force (version 0)",
        ),
        GovernanceEvent.DelegateAppointed: _delegate(
            "a person (pseudonym and public name) now sits on the council for the member state"
        ),
        GovernanceEvent.DelegateEnded: _delegate(
            "a person no longer sits on the council for the member state"
        ),
        GovernanceEvent.MotionTabled: Fields(
            "kind",
            "title",
            "payload",
            "rule",
            "for",
            "opens_at",
            "closes_at",
            about="a motion put to the council: what it would do, by which rule, and when "
            "its vote opens and closes",
        ),
        GovernanceEvent.VoteCast: Fields(
            "member",
            "choice",
            "changed",
            about="a member state's vote on a motion (the last one before the close counts)",
        ),
        GovernanceEvent.MotionDecided: Fields(
            "status",
            "outcome",
            "roll_call",
            "closed_early",
            about="a motion's vote closed: its status, the counted outcome and the roll call",
        ),
        GovernanceEvent.MemberAdmitted: Fields(
            "name", "motion", about="a state admitted to the council by a passed motion"
        ),
        GovernanceEvent.MemberRemoved: Fields(
            "motion", about="a member state removed from the council by a passed motion"
        ),
        GovernanceEvent.ScaleAdopted: Fields(
            "shares",
            "motion",
            about="a contribution scale (percent per member state) adopted by a passed motion",
        ),
        GovernanceEvent.RegulationAdopted: Fields(
            "version",
            "sha256",
            "motion",
            about="a regulation version adopted by a passed motion, named by the SHA-256 of "
            "its canonical JSON (the document is the motion's payload.regulation)",
        ),
    },
)
