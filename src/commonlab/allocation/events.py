"""The record entries the allocation domain writes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AllocationEvent"]


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
