"""The operators' page (/admin): who holds which role, the institutions, how many tokens work
now, and the nodes out of service, each linking to the page or command that acts on it. Every
figure comes from the service that owns it (identity, compute); nothing here changes state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from commonlab.compute import service as compute
from commonlab.http import DbSession
from commonlab.identity import service as identity
from commonlab.policy.principal import Principal, Role
from commonlab.portal.errors import PortalError
from commonlab.portal.pages import CurrentViewer, render_page

if TYPE_CHECKING:
    from commonlab.identity.models import Institution, Person

__all__ = ["AdminOverview", "admin_overview", "router"]

router = APIRouter(include_in_schema=False)
MAX_ROWS = 200


@dataclass(frozen=True)
class AdminOverview:
    people: list[Person]
    institutions: list[Institution]
    tokens: dict[str, int]
    nodes_out: list[tuple[Any, str]]
    limit: int = MAX_ROWS


def admin_overview(db: Session, actor: Principal) -> AdminOverview:
    """What an operator checks first. Lists stop at MAX_ROWS; the API pages through all."""
    people = identity.list_people(db, actor, limit=MAX_ROWS)
    institutions = identity.list_institutions(db, actor, newest_first=True, limit=MAX_ROWS)
    tokens = identity.live_token_counts(db, actor)
    return AdminOverview(people, institutions, tokens, compute.nodes_out_of_service(db, actor))


@router.get("/admin")
def admin(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    if not viewer.signed_in:
        return RedirectResponse("/signin", status_code=303)
    if not viewer.principal.has_role(Role.OPERATOR):
        raise PortalError(403, "this page is for the facility's operators")
    overview = admin_overview(db, viewer.principal)
    return render_page(request, viewer, "admin.html", nav="admin", overview=overview)
