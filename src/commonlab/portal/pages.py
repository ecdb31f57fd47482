"""What every portal page shares: who is looking (`Viewer`, the `CurrentViewer` dependency),
the check every form POST passes first (`CheckedForm`: same origin, CSRF token), rendering in
the shared layout (`render_page`), and the words pages use for the facility's pools.

The `*_views.py` modules build on this one; it imports none of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi import Depends, Form, Request
from fastapi.params import Form as FormInfo
from fastapi.responses import Response

from commonlab.errors import Unauthenticated
from commonlab.http import DbSession
from commonlab.policy.principal import PUBLIC, Principal
from commonlab.portal.errors import PortalError
from commonlab.portal.session import (
    check_same_origin,
    csrf_matches,
    csrf_token,
    raw_session,
    session_principal,
)
from commonlab.portal.templating import render

__all__ = ["POOL_LABELS", "CheckedForm", "CurrentViewer", "Viewer", "render_page"]

# The capacity pools of the regulation, as the council, project and what-if pages name them.
POOL_LABELS = {
    "national_pools": "Member-state national pools",
    "open_calls": "Open calls",
    "smes_and_public_bodies": "SMEs and public bodies",
    "directors_reserve": "Director's reserve",
}


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: the principal behind the session cookie, or the public."""

    principal: Principal
    session: str | None
    csrf: str
    # Why a session cookie this browser still sends no longer signs it in.
    ended: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.principal.person_id is not None


def _viewer(request: Request, db: DbSession) -> Viewer:
    session = raw_session(request)
    csrf = csrf_token(request.app.state.facility.session_secret, session)
    try:
        principal = session_principal(db, request)
    except Unauthenticated as exc:
        return Viewer(PUBLIC, session, csrf, exc.message)
    return Viewer(principal or PUBLIC, session, csrf)


CurrentViewer = Annotated[Viewer, Depends(_viewer)]


async def _checked_form(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """Refuse a POST that did not come from one of this site's own forms, or that sends a
    field of one value more than once (which value would count is not for a guess)."""
    if reason := check_same_origin(request):
        raise PortalError(403, f"Refused: {reason}. Nothing was changed.")
    if not csrf_matches(request, csrf):
        raise PortalError(
            403,
            "This form is out of date or did not come from this site, so nothing was changed. "
            "Reload the page and try again.",
        )
    form = await request.form()  # parsed once already, for the fields: Starlette keeps it
    endpoint = request.scope.get("endpoint")
    single = {"csrf", *_single_valued_fields(endpoint)} if endpoint else {"csrf"}
    for name in sorted(single):
        if len(form.getlist(name)) > 1:
            raise PortalError(
                400, f"The form sent the field {name!r} more than once. Nothing was changed."
            )


@functools.cache
def _single_valued_fields(endpoint: Any) -> list[str]:
    """The names of the form fields `endpoint` takes one value of (its Form() parameters
    that are not lists), under their aliases."""
    names = []
    for name, hint in get_type_hints(endpoint, include_extras=True).items():
        if get_origin(hint) is not Annotated:
            continue
        value_type, *extras = get_args(hint)
        form = next((e for e in extras if isinstance(e, FormInfo)), None)
        if form is not None and get_origin(value_type) is not list:
            names.append(form.alias or name)
    return names


CheckedForm = Annotated[None, Depends(_checked_form)]


def render_page(
    request: Request, viewer: Viewer, name: str, *, status: int = 200, **context: Any
) -> Response:
    """A page in the shared layout; every portal view renders here."""
    facility = request.app.state.facility
    base = facility.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    return render(
        name,
        {
            "viewer": viewer,
            "has_session": viewer.session is not None,
            "origin": facility.origin,
            "base_url": base,
            **context,
        },
        status=status,
        private=viewer.session is not None,
    )
