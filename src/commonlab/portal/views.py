"""Portal pages: the facility at a glance, sign-in and the signed-in person, the public
record with an inclusion proof for every entry, and how to audit the facility against it.
Server-rendered; no page needs JavaScript.

Views are thin: parse, call one read or service function, render. Every POST checks its
CSRF token and origin before anything else happens.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from commonlab.errors import Unauthenticated
from commonlab.http import MAX_ID, DbSession
from commonlab.identity import service as identity
from commonlab.portal import reads
from commonlab.portal.allocation_views import my_work
from commonlab.portal.charts import column_chart, row_chart
from commonlab.portal.federation_views import sign_in_providers
from commonlab.portal.pages import CheckedForm, CurrentViewer, Viewer, render_page
from commonlab.portal.session import (
    MAX_RETURN_CHARS,
    SESSION_COOKIE,
    end_session,
    return_path,
    signed_in_at,
)
from commonlab.portal.templating import STATIC_DIR, hours_text

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_TOKEN_CHARS = 512
# Entry types are lower-case words joined by ':'; anything else cannot match and is refused
# (it also keeps LIKE wildcards out of the prefix filter).
TYPE_PATTERN = r"^[a-z0-9_.:-]*$"
# No control characters: PostgreSQL refuses NUL in text, and nothing legitimate has them.
SUBJECT_PATTERN = r"^[^\x00-\x1f\x7f]*$"


# Home ---------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    facts = reads.facility_facts(db)
    chart = row_chart(facts.institutions_by_kind)
    return render_page(
        request,
        viewer,
        "home.html",
        nav="home",
        facts=facts,
        kind_chart=chart,
        projects_counted=reads.PROJECTS_COUNTED,
    )


# Sign-in ------------------------------------------------------------------------------------


# Where to go once signed in (a page that sent the person here), checked by `return_path`.
ReturnTo = Annotated[str | None, Query(alias="next", max_length=MAX_RETURN_CHARS)]


@router.get("/signin")
def signin_form(request: Request, viewer: CurrentViewer, destination: ReturnTo = None) -> Response:
    return _signin_page(request, viewer, return_path(destination), error=None)


def _signin_page(
    request: Request, viewer: Viewer, destination: str, *, error: str | None, status: int = 200
) -> Response:
    return render_page(
        request,
        viewer,
        "signin.html",
        status=status,
        nav="signin",
        error=error,
        providers=sign_in_providers(request),
        destination=destination,
    )


@router.post("/signin")
def signin(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    token: Annotated[str, Form()] = "",
    destination: Annotated[str, Form(alias="next", max_length=MAX_RETURN_CHARS)] = "",
) -> Response:
    to = return_path(destination)
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        error = (
            "Paste your API token (it starts with clab_)."
            if not token
            else ("That is far longer than a commonlab token: paste only the token.")
        )
        return _signin_page(request, viewer, to, error=error, status=400)
    try:
        principal = identity.authenticate(db, token)
    except Unauthenticated as exc:
        return _signin_page(request, viewer, to, error=exc.message, status=401)
    return signed_in_at(db, request, principal, to)


@router.post("/signout")
def signout(request: Request, db: DbSession, _: CheckedForm) -> Response:
    end_session(db, request)  # on the server: the cookie, replayed, signs no one in
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.app.state.facility.settings.secure_cookies,
    )
    return response


@router.get("/me")
def me(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    work = my_work(db, viewer.principal)
    return render_page(request, viewer, "me.html", nav="me", work=work, hours=hours_text)


# The public record --------------------------------------------------------------------------


@router.get("/record")
def record(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    type: Annotated[str | None, Query(max_length=80, pattern=TYPE_PATTERN)] = None,
    subject: Annotated[str | None, Query(max_length=200, pattern=SUBJECT_PATTERN)] = None,
    before: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> Response:
    # An empty GET-form field means "any", not "the empty string".
    type, subject = (type or None), (subject.strip() if subject else None) or None
    overview = reads.record_overview(
        db, type_prefix=type, subject=subject, before=before, limit=PAGE_SIZE
    )
    chart = column_chart([(day.strftime("%d %b"), n) for day, n in overview.per_day])
    filters = {k: v for k, v in (("type", type), ("subject", subject)) if v}
    older = overview.page.older
    return render_page(
        request,
        viewer,
        "record.html",
        nav="record",
        overview=overview,
        day_chart=chart,
        filters={"type": type or "", "subject": subject or ""},
        before=before,
        newest_url=_record_url(filters) if before is not None else None,
        older_url=_record_url({**filters, "before": str(older)}) if older is not None else None,
        verifier_key=request.app.state.facility.signer.verifier_key(),
        # Forks an operator forced on a restored log (record/witnessed.py): said first.
        forks=request.app.state.facility.forks,
    )


def _record_url(params: dict[str, str]) -> str:
    return "/record" + ("?" + urlencode(params) if params else "")


EntryIndex = Annotated[int, Path(ge=0, le=MAX_ID)]


@router.get("/record/entries/{index}")
def entry(request: Request, index: EntryIndex, db: DbSession, viewer: CurrentViewer) -> Response:
    detail = reads.entry_detail(db, request.app.state.facility.proofs, index)
    return render_page(
        request,
        viewer,
        "entry.html",
        nav="record",
        detail=detail,
        entry_literal=repr(detail.body.encode()),
        verifier_key=request.app.state.facility.signer.verifier_key(),
    )


@router.get("/record/entries/{index}/raw")
def entry_bytes(index: EntryIndex, db: DbSession) -> Response:
    """The entry's exact bytes, as hashed into the tree: for `sha256sum` and scripts."""
    return Response(
        reads.entry_bytes(db, index),
        media_type="application/json",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"},
    )


@router.get("/audit")
def audit(request: Request, viewer: CurrentViewer) -> Response:
    """How anyone re-derives the facility's figures from the record: `commonlab audit`."""
    return render_page(
        request,
        viewer,
        "audit.html",
        nav="record",
        verifier_key=request.app.state.facility.signer.verifier_key(),
    )


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    # Browsers ask for /favicon.ico whatever the page says: answer with the site's icon.
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")
