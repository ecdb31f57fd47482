"""Signing in with an institution (an OpenID Connect provider), linking another provider or
an ORCID iD to one's account, and the operators' page of affiliations no rule maps yet.

The flow's rules live in identity/federation.py; these views carry the browser there and
back. Leaving for the provider is a plain link, not a form: the portal's pages allow forms to
post only to the portal itself (CSP form-action 'self'), which also stops a form's redirect to
another site.
- Signing in needs no CSRF token: a trip another site starts in your browser ends with you
  signed in as yourself, and a trip's return is bound to the browser that left by a cookie
  (SameSite=Lax: sent on that top-level return), so nobody's code lands in your browser.
- Linking does: the link carries the page's CSRF token and must come from the portal's own
  page, or another site could send a signed-in person to link an account of its choosing.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from commonlab.config import OidcProvider
from commonlab.http import MAX_ID, DbSession
from commonlab.identity import federation
from commonlab.identity import service as identity
from commonlab.policy.principal import Role
from commonlab.portal.errors import PortalError
from commonlab.portal.pages import CheckedForm, CurrentViewer, Viewer, render_page
from commonlab.portal.session import (
    MAX_RETURN_CHARS,
    check_same_origin,
    csrf_matches,
    return_path,
    signed_in_at,
)

__all__ = ["CALLBACK_PATH", "TRIP_COOKIE", "router", "sign_in_providers"]

router = APIRouter(include_in_schema=False)

CALLBACK_PATH = "/signin/callback"
# Proves at the callback that this browser began the trip (only its SHA-256 is kept).
TRIP_COOKIE = "commonlab_signin_trip"
# The portal page to return to after signing in (a path of this site, checked at both ends).
RETURN_COOKIE = "commonlab_signin_return"
ProviderName = Annotated[str, Path(max_length=40, pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
# Long enough for any provider's values; longer is not a sign-in coming back.
Returned = Annotated[str | None, Query(max_length=4096)]
MAX_AFFILIATION = 300


def sign_in_providers(request: Request) -> list[OidcProvider]:
    """The providers a person may sign in with (ORCID links to an account; it opens none)."""
    return [p for p in _providers(request) if p.kind == "oidc"]


def _providers(request: Request) -> tuple[OidcProvider, ...]:
    return request.app.state.facility.settings.oidc_providers


def _callback_url(request: Request) -> str:
    base = request.app.state.facility.settings.public_url.rstrip("/")
    return (base or str(request.base_url).rstrip("/")) + CALLBACK_PATH


def _to_provider(request: Request, url: str, trip: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    _trip_cookie(request, response, TRIP_COOKIE, trip)
    return response


def _trip_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """A cookie only the callback sees, for as long as a trip may last."""
    response.set_cookie(
        name,
        value,
        max_age=federation.LOGIN_MINUTES * 60,
        path=CALLBACK_PATH,
        httponly=True,
        samesite="lax",
        secure=request.app.state.facility.settings.secure_cookies,
    )


# Sign in with a provider ----------------------------------------------------------------------


@router.get("/signin/with/{provider}")
def sign_in_with(
    request: Request,
    db: DbSession,
    provider: ProviderName,
    destination: Annotated[str | None, Query(alias="next", max_length=MAX_RETURN_CHARS)] = None,
) -> Response:
    chosen = federation.provider_named(sign_in_providers(request), provider)
    url, trip = federation.begin(db, chosen, redirect_uri=_callback_url(request))
    response = _to_provider(request, url, trip)
    if destination and (to := return_path(destination, default="")):
        # Where to land once back: only this browser's callback reads it (checked again there).
        _trip_cookie(request, response, RETURN_COOKIE, to)
    return response


@router.get(CALLBACK_PATH)
def callback(
    request: Request,
    db: DbSession,
    state: Returned = None,
    code: Returned = None,
    error: Returned = None,
) -> Response:
    outcome = federation.finish(
        db,
        _providers(request),
        state=state,
        code=code,
        error=error,
        browser=request.cookies.get(TRIP_COOKIE),
        redirect_uri=_callback_url(request),
    )
    secure = request.app.state.facility.settings.secure_cookies
    response: Response
    if outcome.token_id is None:  # a link: the person is signed in already
        response = RedirectResponse(f"/me/accounts?linked={outcome.provider}", status_code=303)
    else:
        principal = identity.authenticate_token_id(db, outcome.token_id)
        # A newcomer sees their accounts first (where their institution stands); someone
        # known goes back to the page that sent them to sign in.
        welcome = "/me/accounts?welcome=1" if outcome.created else None
        to = welcome or return_path(request.cookies.get(RETURN_COOKIE))
        response = signed_in_at(db, request, principal, to)
    for cookie in (TRIP_COOKIE, RETURN_COOKIE):
        response.delete_cookie(
            cookie, path=CALLBACK_PATH, httponly=True, samesite="lax", secure=secure
        )
    return response


# One's linked accounts ------------------------------------------------------------------------


@router.get("/me/accounts")
def accounts(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    linked: Annotated[str | None, Query(max_length=40)] = None,
    welcome: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    if not viewer.signed_in:
        return RedirectResponse("/signin", status_code=303)
    mine = federation.account(db, viewer.principal)
    names = {p.name: p.display_name for p in _providers(request)}
    have = {row.provider for row in mine.identities}
    return render_page(
        request,
        viewer,
        "accounts.html",
        nav="me",
        account=mine,
        names=names,
        linkable=[p for p in _providers(request) if p.name not in have],
        linked=names.get(linked or ""),
        welcome=bool(welcome),
    )


@router.get("/me/accounts/link/{provider}")
def link(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    provider: ProviderName,
    csrf: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    if reason := check_same_origin(request):
        raise PortalError(403, f"Refused: {reason}. Nothing was linked.")
    if not csrf_matches(request, csrf):
        raise PortalError(
            403,
            "This link is out of date or did not come from this site: open your account page "
            "again.",
        )
    _require_person(viewer)
    chosen = federation.provider_named(_providers(request), provider)
    url, trip = federation.begin(
        db, chosen, redirect_uri=_callback_url(request), link_person_id=viewer.principal.person_id
    )
    return _to_provider(request, url, trip)


def _require_person(viewer: Viewer) -> None:
    if not viewer.signed_in:
        raise PortalError(401, "Sign in first, then link another account to yours.")
    if viewer.principal.job_id is not None:
        raise PortalError(403, "A job's token links no account.")


# The operators' page of affiliations ---------------------------------------------------------


@router.get("/admin/affiliations")
def affiliations(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    done: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    _require_operator(viewer)
    rows = federation.pending_affiliations(db, viewer.principal)
    institutions = identity.list_institutions(db, viewer.principal, newest_first=False, limit=500)
    return render_page(
        request,
        viewer,
        "affiliations.html",
        nav="admin",
        rows=rows,
        institutions=institutions,
        done=done,
    )


@router.post("/admin/affiliations/map")
def map_affiliation(
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    value: Annotated[str, Form(max_length=MAX_AFFILIATION)] = "",
    institution_id: Annotated[int, Form(ge=1, le=MAX_ID)] = 0,
) -> Response:
    _require_operator(viewer)
    if institution_id == 0:
        raise PortalError(422, "Choose the institution this affiliation belongs to.")
    placed = federation.map_affiliation(db, viewer.principal, value, institution_id)
    done = f"mapped {value.strip().lower()}: {placed} placed"
    return RedirectResponse(f"/admin/affiliations?{_query(done)}", status_code=303)


@router.post("/admin/affiliations/dismiss")
def dismiss_affiliation(
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    value: Annotated[str, Form(max_length=MAX_AFFILIATION)] = "",
) -> Response:
    _require_operator(viewer)
    count = federation.dismiss_affiliation(db, viewer.principal, value)
    done = f"set aside {value.strip().lower()}: {count} without an institution"
    return RedirectResponse(f"/admin/affiliations?{_query(done)}", status_code=303)


def _query(done: str) -> str:
    return urlencode({"done": done[:200]})


def _require_operator(viewer: Viewer) -> None:
    if not viewer.signed_in:
        raise PortalError(401, "Sign in as an operator to see this page.")
    if not viewer.principal.has_role(Role.OPERATOR):
        raise PortalError(403, "This page is for the facility's operators.")
