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


_LEDGER_CLOSE = Fields("ledger", "reservation", "class", "hours", "job")

FIELDS = declare(
    AllocationEvent,
    {
        AllocationEvent.CallOpened: Fields(
            "title", "pool", "pool_percent", "budget", "opens_at", "closes_at"
        ),
        AllocationEvent.ProposalSubmitted: Fields(
            "call", "requested", "level", private=("title", "abstract")
        ),
        AllocationEvent.ConflictDeclared: Fields(private=("with", "reason")),
        AllocationEvent.ReviewerAssigned: Fields("reviewer"),
        AllocationEvent.ReviewSubmitted: Fields("reviewer", private=("scores", "comment")),
        AllocationEvent.ReplyGiven: Fields(private=("text",)),
        AllocationEvent.ProposalDecided: Fields("decision", "score"),
        AllocationEvent.AllocationGranted: Fields(
            "project",
            "title",
            "country",
            "pool",
            "budget",
            "starts_on",
            "ends_on",
            "status",
            "members",
        ),
        AllocationEvent.AllocationApproved: Fields("motion"),
        AllocationEvent.SubAllocated: Fields("parent", "project", "budget"),
        AllocationEvent.MemberAdded: Fields("member"),
        AllocationEvent.HoursReserved: Fields("ledger", "class", "hours", "job"),
        AllocationEvent.HoursSettled: _LEDGER_CLOSE,
        AllocationEvent.HoursReleased: _LEDGER_CLOSE,
    },
)
