"""Allocation routes under /api/v1: calls, proposals, review, decisions, allocations, the
ledger and share reports. Thin: parse, call one service function, render."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from commonlab.allocation import service
from commonlab.allocation.models import Allocation, Call, Proposal
from commonlab.allocation.schemas import (
    AllocationOut,
    CallCreate,
    CallOut,
    ChargeCreate,
    ConflictCreate,
    DecisionCreate,
    ProposalCreate,
    ProposalOut,
    ReplyCreate,
    ReservationCreate,
    ReviewCreate,
    SubAllocationCreate,
    SuggestedReviewerOut,
    TrancheOut,
)
from commonlab.bounded import Int64
from commonlab.errors import InvalidInput
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page, paginate

router = APIRouter(prefix="/api/v1", tags=["allocation"])
Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]


class ReviewerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer_id: Annotated[Int64, Field(ge=1, le=MAX_ID, strict=True)]


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: Annotated[Int64, Field(ge=1, le=MAX_ID, strict=True)]


def call_out(call: Call) -> CallOut:
    return CallOut.model_validate(call, from_attributes=True)


def proposal_out(p: Proposal) -> ProposalOut:
    fields = {
        name: getattr(p, name)
        for name in ProposalOut.model_fields
        if name not in {"reviews", "replies"}
    }
    return ProposalOut(
        **fields,
        reviews=[
            {
                "reviewer_id": r.reviewer_id,
                "scores": r.scores,
                "comment": r.comment,
                "submitted_at": r.submitted_at,
            }
            for r in p.reviews
        ],
        replies=[r.text for r in p.replies],
    )


def allocation_out(
    a: Allocation, used: dict[str, Decimal] | None = None, held: dict[str, Decimal] | None = None
) -> AllocationOut:
    out = AllocationOut.model_validate(a, from_attributes=True)
    out.used = {k: str(v) for k, v in (used or {}).items()}
    out.reserved = {k: str(v) for k, v in (held or {}).items()}
    return out


def tranche_out(t: service.Tranche) -> TrancheOut:
    return TrancheOut(
        quarter=t.quarter,
        starts_on=t.starts_on,
        ends_on=t.ends_on,
        accelerator=t.accelerator,
        released=f"{t.released:.2f}",
        drawn=f"{t.drawn:.2f}",
        reserved=f"{t.reserved:.2f}",
        remaining=f"{t.remaining:.2f}",
        current=t.current,
        available=None if t.available is None else f"{t.available:.2f}",
    )


# Calls


@router.post("/calls", response_model=CallOut, status_code=201, summary="Open a call")
def create_call(req: CallCreate, db: DbSession, principal: CurrentPrincipal) -> CallOut:
    return call_out(service.create_call(db, principal, req))


@router.get("/calls", response_model=Page[CallOut], summary="Calls for proposals")
def calls(db: DbSession, principal: CurrentPrincipal, page: Pagination) -> Page[CallOut]:
    query = service.calls_query(principal)
    with db.begin():
        return paginate(db, query, Call.id, page, call_out)


@router.get("/calls/{call_id}", response_model=CallOut)
def call(call_id: Id, db: DbSession, principal: CurrentPrincipal) -> CallOut:
    return call_out(service.get_call(db, principal, call_id))


@router.get("/calls/{call_id}/ranking", summary="The panel's ranking (operators)")
def ranking(call_id: Id, db: DbSession, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return [
        {"rank": i + 1, "proposal": p.id, "title": p.title, "score": None if s is None else str(s)}
        for i, (p, s) in enumerate(service.rank_call(db, principal, call_id))
    ]


# Proposals and review


@router.post("/proposals", response_model=ProposalOut, status_code=201)
def submit(req: ProposalCreate, db: DbSession, principal: CurrentPrincipal) -> ProposalOut:
    return proposal_out(service.submit_proposal(db, principal, req))


@router.get("/proposals/{proposal_id}", response_model=ProposalOut)
def proposal(proposal_id: Id, db: DbSession, principal: CurrentPrincipal) -> ProposalOut:
    return proposal_out(service.get_proposal(db, principal, proposal_id))


@router.get("/proposals/{proposal_id}/reviewers", summary="Reviewers and their conflicts")
def reviewers(proposal_id: Id, db: DbSession, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return [
        {"person_id": p.id, "name": p.name, "eligible": not reasons, "conflicts": reasons}
        for p, reasons in service.eligible_reviewers(db, principal, proposal_id)
    ]


@router.get(
    "/proposals/{proposal_id}/reviewers/suggested",
    response_model=list[SuggestedReviewerOut],
    summary="Reviewers free of conflicts, least loaded first (operators)",
)
def suggested_reviewers(
    proposal_id: Id, db: DbSession, principal: CurrentPrincipal
) -> list[SuggestedReviewerOut]:
    return [
        SuggestedReviewerOut(
            person_id=s.person.id,
            name=s.person.name,
            open_reviews=s.open_reviews,
            done_reviews=s.done_reviews,
        )
        for s in service.suggested_reviewers(db, principal, proposal_id)
    ]


@router.post("/proposals/{proposal_id}/reviewers", status_code=201, summary="Assign a reviewer")
def assign(
    proposal_id: Id, req: ReviewerIn, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    review = service.assign_reviewer(db, principal, proposal_id, req.reviewer_id)
    return {"proposal": proposal_id, "reviewer_id": review.reviewer_id}


@router.post("/proposals/{proposal_id}/review", summary="Submit your scores")
def score(
    proposal_id: Id, req: ReviewCreate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    review = service.score_review(db, principal, proposal_id, req)
    return {"proposal": proposal_id, "scores": review.scores}


@router.post("/proposals/{proposal_id}/replies", status_code=201, summary="The PI's reply")
def reply(
    proposal_id: Id, req: ReplyCreate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    service.reply(db, principal, proposal_id, req.text)
    return {"proposal": proposal_id}


@router.post("/proposals/{proposal_id}/decision", summary="Award or reject")
def decide(
    proposal_id: Id, req: DecisionCreate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    allocation = service.decide_proposal(db, principal, proposal_id, award=req.award)
    return {
        "proposal": proposal_id,
        "allocation": None if allocation is None else allocation_out(allocation),
    }


@router.post("/conflicts", status_code=201, summary="Declare a conflict of interest")
def conflict(req: ConflictCreate, db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    row = service.declare_conflict(db, principal, req)
    return {"id": row.id, "person_id": row.person_id}


# Allocations and the ledger


@router.get("/allocations", response_model=Page[AllocationOut], summary="Awarded allocations")
def allocations(
    db: DbSession, principal: CurrentPrincipal, page: Pagination
) -> Page[AllocationOut]:
    query = service.allocations_query(principal)
    with db.begin():
        return paginate(db, query, Allocation.id, page, allocation_out)


@router.get("/allocations/{allocation_id}", response_model=AllocationOut)
def allocation(allocation_id: Id, db: DbSession, principal: CurrentPrincipal) -> AllocationOut:
    return allocation_out(*service.get_allocation(db, principal, allocation_id))


@router.get(
    "/allocations/{allocation_id}/tranches",
    response_model=list[TrancheOut],
    summary="Quarterly tranches: released, drawn, reserved, remaining",
)
def tranches(allocation_id: Id, db: DbSession, principal: CurrentPrincipal) -> list[TrancheOut]:
    return [tranche_out(t) for t in service.get_tranches(db, principal, allocation_id)]


@router.post(
    "/allocations/{allocation_id}/sub-allocations", response_model=AllocationOut, status_code=201
)
def sub(
    allocation_id: Id, req: SubAllocationCreate, db: DbSession, principal: CurrentPrincipal
) -> AllocationOut:
    return allocation_out(service.sub_allocate(db, principal, allocation_id, req))


@router.post("/allocations/{allocation_id}/members", status_code=201, summary="Add a member")
def add_member(
    allocation_id: Id, req: MemberIn, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    member = service.add_member(db, principal, allocation_id, req.person_id)
    return {"project": member.project, "person_id": member.person_id, "role": member.role}


@router.post("/allocations/{allocation_id}/reservations", status_code=201, summary="Reserve hours")
def reserve(
    allocation_id: Id, req: ReservationCreate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    charge = service.reserve(db, principal, allocation_id, req)
    return {"reservation": charge.id, "hours": str(charge.hours)}


@router.post("/ledger/{reservation_id}/settle", summary="Charge what a job used")
def settle(
    reservation_id: Id, req: ChargeCreate, db: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    charge = service.settle(db, principal, reservation_id, req.hours)
    return {"ledger": charge.id, "hours": str(charge.hours)}


@router.post("/ledger/{reservation_id}/release", summary="Release a reservation")
def release(reservation_id: Id, db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    charge = service.release(db, principal, reservation_id)
    return {"ledger": charge.id}


# With format=csv a report is a CSV table.
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


@router.get(
    "/reports/usage",
    summary="Budget and delivered hours by member, institution, call or project",
    responses=CSV_RESPONSE,
)
def usage_report(
    db: DbSession,
    principal: CurrentPrincipal,
    start: date,
    end: date,
    by: Annotated[Literal["member", "institution", "call", "project"], Query()] = "project",
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    if end <= start:
        raise InvalidInput("end must be after start")
    rows = service.usage_report(db, principal, by=by, start=start, end=end)
    if format == "json":
        return {"by": by, "start": start.isoformat(), "end": end.isoformat(), "rows": rows}
    return _csv(rows, ["group", "allocations", "budget_hours", "delivered_hours"])


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")


@router.get(
    "/reports/shares",
    summary="Delivered vs entitled share per member state",
    responses=CSV_RESPONSE,
)
def shares(
    db: DbSession,
    principal: CurrentPrincipal,
    start: date,
    end: date,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    if end <= start:
        raise InvalidInput("end must be after start")
    report = service.share_accounting(db, principal, start=start, end=end)
    if format == "json":
        return report
    columns = ["code", "entitled_percent", "delivered_hours", "delivered_percent", "deviation"]
    return _csv(report["states"], [*columns, "outside_band"])
