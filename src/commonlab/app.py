"""The FastAPI application: the domains' routers, one error handler tree, the body limit,
and the record sequencer running beside the web workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from commonlab import __version__
from commonlab.allocation.api import router as allocation_router
from commonlab.artifacts.mount import mount_artifacts
from commonlab.facility import Facility
from commonlab.governance.api import router as governance_router
from commonlab.http import BodyLimit, install_error_handlers
from commonlab.identity.api import router as identity_router
from commonlab.portal.views import mount_portal
from commonlab.record.api import log_router
from commonlab.record.api import router as record_router
from commonlab.record.sequencer import Sequencer
from commonlab.simulator.api import router as simulator_router
from commonlab.ticker import Ticker

__all__ = ["create_app"]

API_DESCRIPTION = """\
The API of a commonlab facility. Every error is RFC 9457 `application/problem+json`.
Authenticate with `Authorization: Bearer <token>`; without it a request acts as the public.
Lists take `limit` and `after` and return `{"items": [...], "next": cursor-or-null}`.
"""


def create_app(facility: Facility, *, run_sequencer: bool = True) -> FastAPI:
    """The app; `run_sequencer=False` (tests) leaves sequencing and vote closing to the caller."""
    sequencer = Sequencer(facility.db, facility.signer, settings=facility.settings)
    closer = Ticker("governance-closer", 5.0, lambda: _close_due_motions(facility))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_sequencer:
            sequencer.start()
            closer.start()
        try:
            yield
        finally:
            closer.stop()
            sequencer.stop()

    app = FastAPI(
        title="commonlab",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.facility = facility
    app.state.db = facility.db
    app.state.sequencer = sequencer
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=facility.settings.max_body_bytes,
        # Artifact uploads arrive in resumable chunks, far larger than any JSON body.
        larger={"/api/v1/artifacts/uploads/": facility.settings.max_upload_chunk_bytes},
    )

    @app.get("/api/v1/health", tags=["meta"], summary="Liveness, version and record size")
    def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "origin": facility.origin}

    app.include_router(identity_router)
    app.include_router(governance_router)
    app.include_router(allocation_router)
    app.include_router(simulator_router)
    app.include_router(record_router)
    app.include_router(log_router)
    mount_portal(app)
    mount_artifacts(app)
    return app


def _close_due_motions(facility: Facility) -> None:
    from commonlab.governance.service import close_due_motions

    with facility.db.session() as session:
        close_due_motions(session)
