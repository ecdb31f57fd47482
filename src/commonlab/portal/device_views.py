"""The page where a signed-in person lets a command line sign in (`commonlab login`, the OAuth
device grant): they type the code their terminal shows, see who asks, from where and for
what, and approve or deny. Approving is a form POST with the CSRF token, from this site only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from commonlab.errors import CommonlabError
from commonlab.http import DbSession
from commonlab.identity import device_grant
from commonlab.portal.pages import CheckedForm, CurrentViewer, Viewer, render_page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
# A user code is nine characters with its dash; a little slack for spaces around it.
MAX_CODE_CHARS = 32


def _page(request: Request, viewer: Viewer, stage: str, *, status: int = 200, **context: object):
    return render_page(
        request,
        viewer,
        "device.html",
        status=status,
        nav="me",
        stage=stage,
        token_days=device_grant.TOKEN_DAYS,
        **context,
    )


@router.get("/device")
def device(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    user_code: Annotated[str | None, Query(max_length=MAX_CODE_CHARS)] = None,
) -> Response:
    """Enter a code (or arrive with it from the terminal's link), then confirm."""
    if not viewer.signed_in:
        return _page(request, viewer, "signin", status=401, user_code=user_code or "")
    if not user_code:
        return _page(request, viewer, "enter", user_code="", error=None)
    try:
        pending = device_grant.pending_device(db, viewer.principal, user_code)
    except CommonlabError as exc:
        return _page(
            request, viewer, "enter", status=exc.status, user_code=user_code, error=exc.message
        )
    return _page(request, viewer, "confirm", pending=pending)


@router.post("/device/approve")
def approve(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    user_code: Annotated[str, Form(max_length=MAX_CODE_CHARS)] = "",
) -> Response:
    return _decide(request, db, viewer, user_code, approve=True)


@router.post("/device/deny")
def deny(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    user_code: Annotated[str, Form(max_length=MAX_CODE_CHARS)] = "",
) -> Response:
    return _decide(request, db, viewer, user_code, approve=False)


def _decide(
    request: Request, db: DbSession, viewer: Viewer, user_code: str, *, approve: bool
) -> Response:
    if not viewer.signed_in:
        return _page(request, viewer, "signin", status=401, user_code=user_code)
    try:
        if approve:
            pending = device_grant.approve(db, viewer.principal, user_code)
            return _page(request, viewer, "approved", pending=pending)
        device_grant.deny(db, viewer.principal, user_code)
    except CommonlabError as exc:
        return _page(
            request, viewer, "enter", status=exc.status, user_code=user_code, error=exc.message
        )
    return _page(request, viewer, "denied")
