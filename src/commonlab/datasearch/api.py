"""Training-data search routes under /api/v1: search, trace, membership and opt-outs. Thin:
parse, call one use case in `datasearch.service`, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from commonlab.artifacts.service import Registry
from commonlab.datasearch import service
from commonlab.datasearch.schemas import (
    MAX_PASSAGE_CHARS,
    DatasetSearched,
    MembershipOut,
    OptOutCreate,
    OptOutDecision,
    OptOutOut,
    SearchOut,
    SemanticOut,
    TraceOut,
    TraceRequest,
)
from commonlab.http import CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["datasearch"])


def _registry(request: Request) -> Registry:
    return request.app.state.artifacts


Reg = Annotated[Registry, Depends(_registry)]
_REF = r"^(datasets|models)/[^@\s/]+/[^@\s/]+@[0-9]{1,9}$"
DatasetRef = Annotated[
    str | None,
    Query(max_length=300, pattern=_REF.replace("(datasets|models)", "datasets"),
          description="a dataset version, e.g. datasets/ns/name@3"),
]  # fmt: skip
ModelRef = Annotated[
    str | None,
    Query(max_length=300, pattern=_REF.replace("(datasets|models)", "models"),
          description="a model version: its training data is searched"),
]  # fmt: skip


@router.get(
    "/search",
    response_model=SearchOut,
    summary="Find a passage in a dataset version's records, or a model's training data",
)
def search(
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    q: Annotated[str, Query(min_length=1, max_length=MAX_PASSAGE_CHARS)],
    dataset: DatasetRef = None,
    model: ModelRef = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_HITS_SHOWN)] = 20,
    context: Annotated[int, Query(ge=0, le=service.MAX_CONTEXT_TOKENS)] = 32,
) -> SearchOut:
    return service.search(
        db, principal, reg, query=q, dataset=dataset, model=model, limit=limit, context=context
    )


@router.get(
    "/indexes",
    response_model=list[DatasetSearched],
    summary="Which dataset versions a search would look in, and their indexes",
)
def index_status(
    db: DbSession, principal: CurrentPrincipal, dataset: DatasetRef = None, model: ModelRef = None
) -> list[DatasetSearched]:
    return service.index_status(db, principal, dataset=dataset, model=model)


@router.get(
    "/search/semantic",
    response_model=SemanticOut,
    summary="Records nearest in meaning to a query, in a dataset or a model's training data",
)
def semantic_search(
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    q: Annotated[str, Query(min_length=1, max_length=MAX_PASSAGE_CHARS)],
    dataset: DatasetRef = None,
    model: ModelRef = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_HITS_SHOWN)] = 10,
) -> SemanticOut:
    return service.semantic_search(
        db, principal, reg, query=q, dataset=dataset, model=model, limit=limit
    )


@router.post(
    "/trace",
    response_model=TraceOut,
    summary="The spans of a model's output found verbatim in its training data, rarest first",
)
def trace(req: TraceRequest, db: DbSession, principal: CurrentPrincipal, reg: Reg) -> TraceOut:
    return service.trace(
        db, principal, reg, model=req.model, text=req.text,
        min_tokens=req.min_tokens, max_spans=req.max_spans,
    )  # fmt: skip


@router.get(
    "/membership",
    response_model=MembershipOut,
    summary="Was this file, record or passage in a dataset version or a model's training data?",
)
def membership(
    db: DbSession,
    principal: CurrentPrincipal,
    reg: Reg,
    dataset: DatasetRef = None,
    model: ModelRef = None,
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{64}$")] = None,
    passage: Annotated[str | None, Query(min_length=1, max_length=MAX_PASSAGE_CHARS)] = None,
) -> MembershipOut:
    return service.membership(
        db, principal, reg, model=model, dataset=dataset, sha256=sha256, passage=passage
    )


@router.post(
    "/optouts",
    status_code=201,
    response_model=OptOutOut,
    summary="Ask that content be left out of training data (by passage, digest or URL)",
)
def file_optout(
    req: OptOutCreate, db: DbSession, principal: CurrentPrincipal, reg: Reg
) -> OptOutOut:
    return service.file_optout(db, principal, reg, req)


@router.get("/optouts", response_model=Page[OptOutOut], summary="Opt-outs, newest first")
def list_optouts(db: DbSession, principal: CurrentPrincipal, page: Pagination) -> Page[OptOutOut]:
    items, before = service.list_optouts(db, principal, after=page.after, limit=page.limit)
    return Page[OptOutOut](items=items, next=None if before is None else str(before))


@router.get(
    "/optouts/filter",
    summary="A signed filter of opted-out content digests, to check offline",
)
def optout_filter(db: DbSession, reg: Reg) -> dict:
    return service.signed_filter(db, reg)


OptOutId = Annotated[int, Path(ge=1, le=2**53)]


@router.get("/optouts/{optout_id}", response_model=OptOutOut, summary="One opt-out")
def get_optout(optout_id: OptOutId, db: DbSession, principal: CurrentPrincipal) -> OptOutOut:
    return service.get_optout(db, principal, optout_id)


@router.post(
    "/optouts/{optout_id}/decision",
    response_model=OptOutOut,
    summary="Uphold or reject an opt-out (operators; recorded with the reason)",
)
def decide_optout(
    optout_id: OptOutId, req: OptOutDecision, db: DbSession, principal: CurrentPrincipal
) -> OptOutOut:
    return service.decide_optout(db, principal, optout_id, req)
