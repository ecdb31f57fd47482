"""Adding the portal to the app: every page router, the static files, HTML error pages for
every non-API path, and the cookie sign-in (the API accepts the portal's session too)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from commonlab.http import install_authenticator
from commonlab.portal import (
    admin_views,
    allocation_views,
    artifacts_views,
    compute_views,
    datasearch_views,
    device_views,
    evaluations_views,
    federation_views,
    governance_views,
    sessions_views,
    views,
)
from commonlab.portal.errors import install_portal_errors
from commonlab.portal.session import cookie_principal
from commonlab.portal.templating import STATIC_DIR

__all__ = ["PAGE_MODULES", "mount_portal"]

# Every module of pages, each with its `router`.
PAGE_MODULES = (
    views,
    governance_views,
    allocation_views,
    compute_views,
    admin_views,
    artifacts_views,
    evaluations_views,
    datasearch_views,
    device_views,
    sessions_views,
    federation_views,
)


def mount_portal(app: FastAPI) -> None:
    """Add the pages, their static files, HTML error pages and the cookie sign-in."""
    for pages in PAGE_MODULES:
        app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="portal-static")
    install_portal_errors(app)
    install_authenticator(app, cookie_principal)
