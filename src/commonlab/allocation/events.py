"""The record entries the allocation domain writes, and what each may say in clear.

Proposals are confidential until decided: their text, reviews, replies and conflicts enter
only as commitments; awards, the council's approvals and the ledger are public, so anyone can
replay who was given how many hours and what was drawn from them.
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "AllocationEvent"]


class AllocationEvent(StrEnum):
    CallOpened = "allocation:call:opened"
    ProposalSubmitted = "allocation:proposal:submitted"
    ConflictDeclared = "allocation:conflict:declared"
    ReviewerAssigned = "allocation:review:assigned"
    ReviewSubmitted = "allocation:review:submitted"
    ReplyGiven = "allocation:reply:given"
    ProposalDecided = "allocation:proposal:decided"
    AllocationGranted = "allocation:allocation:granted"
    AllocationApproved = "allocation:allocation:approved"
    SubAllocated = "allocation:allocation:sub_allocated"
    MemberAdded = "allocation:project:member_added"
    HoursReserved = "allocation:ledger:reserved"
    HoursSettled = "allocation:ledger:settled"
    HoursReleased = "allocation:ledger:released"


FIELDS = declare(
    AllocationEvent,
    {
        AllocationEvent.CallOpened: Fields(
            "title",
            "pool",
            "pool_percent",
            "budget",
            "opens_at",
            "closes_at",
            about="a call for proposals opened: its pool, budget (class → hours) and window",
        ),
        AllocationEvent.ProposalSubmitted: Fields(
            "call",
            "requested",
            "level",
            private=("title", "abstract"),
            about="a proposal submitted to a call: the hours requested; its text committed",
        ),
        AllocationEvent.ConflictDeclared: Fields(
            private=("with", "reason"),
            about="a reviewer declared a conflict of interest (with whom and why committed)",
        ),
        AllocationEvent.ReviewerAssigned: Fields(
            "reviewer", about="a reviewer assigned to a proposal"
        ),
        AllocationEvent.ReviewSubmitted: Fields(
            "reviewer",
            private=("scores", "comment"),
            about="a reviewer's scores and comment submitted (both committed)",
        ),
        AllocationEvent.ReplyGiven: Fields(
            private=("text",), about="the PI's reply to the reviews (committed)"
        ),
        AllocationEvent.ProposalDecided: Fields(
            "decision",
            "score",
            about="the panel's decision on a proposal: awarded, awaiting the council or rejected",
        ),
        AllocationEvent.AllocationGranted: Fields(
            "project",
            "title",
            "proposal",
            "institution",
            "country",
            "pool",
            "budget",
            "starts_on",
            "ends_on",
            "status",
            "members",
            about="an award became an allocation: project, institution and its country, pool, "
            "hours per class, period, and whether it waits for the council",
        ),
        AllocationEvent.AllocationApproved: Fields(
            "motion", about="the council's passed motion made an allocation active"
        ),
        AllocationEvent.SubAllocated: Fields(
            "parent",
            "project",
            "title",
            "budget",
            about="a PI divided an allocation: the sub-allocation's project and hours",
        ),
        AllocationEvent.MemberAdded: Fields(
            "member", about="a person (by pseudonym) added to an awarded project"
        ),
        AllocationEvent.HoursReserved: Fields(
            "ledger",
            "class",
            "hours",
            "job",
            "on",
            about="hours held on an allocation for a job, on the day (`on`) they count in",
        ),
        AllocationEvent.HoursSettled: Fields(
            "ledger",
            "reservation",
            "class",
            "hours",
            "job",
            "on",
            about="a reservation closed with the hours the job used, delivered on `on` "
            "(the reservation's day)",
        ),
        AllocationEvent.HoursReleased: Fields(
            "ledger",
            "reservation",
            "class",
            "hours",
            "job",
            "on",
            about="a reservation closed without charge (a refused or cancelled job)",
        ),
    },
)
