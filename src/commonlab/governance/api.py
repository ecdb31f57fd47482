"""Governance routes under /api/v1: members, delegates, motions, votes, regulations.
Thin: parse, call one service function, render."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from commonlab.bounded import Int64
from commonlab.governance import service
from commonlab.governance.models import Motion
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import (
    CouncilCreate,
    DelegateCreate,
    MemberOut,
    MotionCreate,
    MotionOut,
    VoteCreate,
)
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page, paginate
from commonlab.regulation.service import InForce

router = APIRouter(prefix="/api/v1", tags=["governance"])

Code = Annotated[str, Path(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]
Version = Annotated[Int64, Path(ge=0, le=1_000_000)]
Status = Annotated[str | None, Query(pattern=r"^(open|passed|failed|lapsed)$")]


def _regulation(item: InForce) -> dict[str, Any]:
    return {
        "version": item.version,
        "sha256": item.sha256,
        "adopted_at": item.adopted_at,
        "provisional": item.version == 0,
        "document": item.regulation.model_dump(mode="json"),
    }


@router.get("/members", response_model=list[MemberOut], summary="Member states and delegates")
def members(
    db: DbSession, principal: CurrentPrincipal, include_removed: bool = False
) -> list[MemberOut]:
    return service.member_views(db, principal, include_removed=include_removed)


@router.post(
    "/members",
    response_model=list[MemberOut],
    status_code=status.HTTP_201_CREATED,
    summary="Found the council (once): the founding member states and their scale",
)
def found(req: CouncilCreate, db: DbSession, principal: CurrentPrincipal) -> list[MemberOut]:
    service.found_council(db, principal, req)
    return service.member_views(db, principal)


@router.post(
    "/members/{code}/delegates",
    status_code=201,
    response_model=list[MemberOut],
    summary="Record a delegate a member state appointed",
)
def appoint(
    code: Code, req: DelegateCreate, db: DbSession, principal: CurrentPrincipal
) -> list[MemberOut]:
    service.appoint_delegate(db, principal, code, req.person_id)
    return service.member_views(db, principal)


@router.delete("/members/{code}/delegates/{person_id}", response_model=list[MemberOut])
def end(code: Code, person_id: Id, db: DbSession, principal: CurrentPrincipal) -> list[MemberOut]:
    service.end_delegate(db, principal, code, person_id)
    return service.member_views(db, principal)


@router.get("/contribution-scale", summary="The adopted contribution scale and its history")
def scale(db: DbSession, principal: CurrentPrincipal) -> dict[str, Any]:
    history = service.scale_history(db, principal)
    return {
        "current": history[0].shares if history else {},
        "history": [
            {"id": s.id, "shares": s.shares, "adopted_at": s.adopted_at, "motion": s.motion_id}
            for s in history
        ],
    }


@router.post("/motions", response_model=MotionOut, status_code=201, summary="Table a motion")
def table(req: MotionCreate, db: DbSession, principal: CurrentPrincipal) -> MotionOut:
    motion = service.table_motion(db, principal, req)
    return service.motion_view(db, principal, motion.id)


@router.get("/motions", response_model=Page[MotionOut], summary="Motions, oldest first")
def motions(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    status: Status = None,
    kind: MotionKind | None = None,
) -> Page[MotionOut]:
    query = service.motions_query(principal, status=status, kind=kind)
    with db.begin():
        found = paginate(db, query, Motion.id, page, lambda m: m)
        return Page[MotionOut](items=service.motion_views(db, found.items), next=found.next)


@router.get("/motions/{motion_id}", response_model=MotionOut, summary="A motion and its roll call")
def motion(motion_id: Id, db: DbSession, principal: CurrentPrincipal) -> MotionOut:
    return service.motion_view(db, principal, motion_id)


@router.post(
    "/motions/{motion_id}/votes",
    response_model=MotionOut,
    status_code=201,
    summary="Cast or change your state's vote",
)
def vote(motion_id: Id, req: VoteCreate, db: DbSession, principal: CurrentPrincipal) -> MotionOut:
    service.cast_vote(db, principal, motion_id, req.choice, member=req.member)
    return service.motion_view(db, principal, motion_id)


@router.post(
    "/motions/{motion_id}/close",
    response_model=MotionOut,
    summary="Close a vote whose time is up, and apply it if it passed",
)
def close(motion_id: Id, db: DbSession, principal: CurrentPrincipal) -> MotionOut:
    service.close_motion(db, principal, motion_id)
    return service.motion_view(db, principal, motion_id)


@router.get("/regulations", summary="Every regulation version, newest first")
def regulations(db: DbSession, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return [_regulation(item) for item in service.regulation_history(db, principal)]


@router.get("/regulations/in-force", summary="The regulation in force now, or at a moment")
def in_force(db: DbSession, at: datetime | None = None) -> dict[str, Any]:
    return _regulation(service.regulation_version(db, at=at))


@router.get("/regulations/diff", summary="What changed between two versions")
def diff(
    db: DbSession,
    old: Annotated[Int64, Query(alias="from", ge=0, le=1_000_000)],
    new: Annotated[Int64, Query(alias="to", ge=0, le=1_000_000)],
) -> dict[str, Any]:
    return {"from": old, "to": new, "changes": service.regulation_diff(db, old, new)}


@router.get("/regulations/{version}", summary="One regulation version")
def regulation(version: Version, db: DbSession) -> dict[str, Any]:
    return _regulation(service.regulation_version(db, version))
