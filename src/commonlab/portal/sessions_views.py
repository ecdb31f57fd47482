"""A person's sign-ins, and ending them: their open portal sessions and working tokens (the
command line's among them), each with a button that ends it. A person sees their own at
/me/sessions; an operator sees anyone's at /admin/people/{id}/sessions and can sign them out
everywhere. Every POST checks its CSRF token and origin first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from commonlab.errors import NotFound, Unauthenticated
from commonlab.http import MAX_ID, DbSession
from commonlab.identity import service as identity
from commonlab.portal.pages import CheckedForm, CurrentViewer, Viewer, render_page
from commonlab.portal.session import (
    SESSION_MAX_AGE,
    end_session_of,
    end_sessions_of,
    live_sessions,
    session_digest,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MAX_ROWS = 200
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _base(viewer: Viewer, person_id: int) -> str:
    if viewer.principal.person_id == person_id:
        return "/me/sessions"
    return f"/admin/people/{person_id}/sessions"


def _page(request: Request, db: DbSession, viewer: Viewer, person_id: int) -> Response:
    if not viewer.signed_in:
        return RedirectResponse("/signin", status_code=303)
    actor = viewer.principal
    person = identity.get_person(db, actor, person_id)
    sessions = live_sessions(db, actor, person_id, limit=MAX_ROWS)
    tokens = identity.live_tokens(db, actor, person_id, limit=MAX_ROWS)
    this_browser = session_digest(viewer.session) if viewer.session else None
    return render_page(
        request,
        viewer,
        "sessions.html",
        nav="me",
        person=person,
        own=actor.person_id == person_id,
        base=_base(viewer, person_id),
        sessions=sessions,
        tokens=tokens,
        this_browser=this_browser,
        this_token=actor.token_id,
        session_hours=SESSION_MAX_AGE // 3600,
        limit=MAX_ROWS,
    )


@router.get("/me/sessions")
def my_sessions(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    if not viewer.signed_in:
        return RedirectResponse("/signin", status_code=303)
    return _page(request, db, viewer, viewer.principal.person_id or 0)


@router.get("/admin/people/{person_id}/sessions")
def someones_sessions(
    request: Request, person_id: Id, db: DbSession, viewer: CurrentViewer
) -> Response:
    return _page(request, db, viewer, person_id)


def _done(viewer: Viewer, person_id: int, what: str) -> Response:
    return RedirectResponse(f"{_base(viewer, person_id)}?done={what}", status_code=303)


def _signed_in(viewer: Viewer) -> int:
    if not viewer.signed_in or viewer.principal.person_id is None:
        raise Unauthenticated("sign in first: the public has no sessions to end")
    return viewer.principal.person_id


def _end_one(db: DbSession, viewer: Viewer, person_id: int, session_id: int) -> Response:
    end_session_of(db, viewer.principal, person_id, session_id)
    return _done(viewer, person_id, "session")


def _end_all(db: DbSession, viewer: Viewer, person_id: int) -> Response:
    end_sessions_of(db, viewer.principal, person_id)
    return _done(viewer, person_id, "all")


def _revoke(db: DbSession, viewer: Viewer, person_id: int, token_id: int) -> Response:
    listed = identity.live_tokens(db, viewer.principal, person_id, limit=MAX_ROWS)
    if token_id not in {token.id for token in listed}:
        raise NotFound(f"no working token {token_id} of this person")
    identity.revoke_token(db, viewer.principal, token_id)
    return _done(viewer, person_id, "token")


@router.post("/me/sessions/{session_id}/end")
def end_mine(db: DbSession, viewer: CurrentViewer, _: CheckedForm, session_id: Id) -> Response:
    return _end_one(db, viewer, _signed_in(viewer), session_id)


@router.post("/me/sessions/end-all")
def end_all_mine(db: DbSession, viewer: CurrentViewer, _: CheckedForm) -> Response:
    return _end_all(db, viewer, _signed_in(viewer))


@router.post("/me/sessions/tokens/{token_id}/revoke")
def revoke_mine(db: DbSession, viewer: CurrentViewer, _: CheckedForm, token_id: Id) -> Response:
    return _revoke(db, viewer, _signed_in(viewer), token_id)


@router.post("/admin/people/{person_id}/sessions/{session_id}/end")
def end_someones(
    db: DbSession, viewer: CurrentViewer, _: CheckedForm, person_id: Id, session_id: Id
) -> Response:
    _signed_in(viewer)
    return _end_one(db, viewer, person_id, session_id)


@router.post("/admin/people/{person_id}/sessions/end-all")
def end_all_someones(
    db: DbSession, viewer: CurrentViewer, _: CheckedForm, person_id: Id
) -> Response:
    _signed_in(viewer)
    return _end_all(db, viewer, person_id)


@router.post("/admin/people/{person_id}/sessions/tokens/{token_id}/revoke")
def revoke_someones(
    db: DbSession, viewer: CurrentViewer, _: CheckedForm, person_id: Id, token_id: Id
) -> Response:
    _signed_in(viewer)
    return _revoke(db, viewer, person_id, token_id)
