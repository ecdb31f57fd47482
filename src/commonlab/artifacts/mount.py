"""Adding the artifacts domain to the app: its /api/v1 routes, the Hub-compatible read API,
and the object store every use case shares (its portal pages are the portal's to mount)."""

from __future__ import annotations

from fastapi import FastAPI

from commonlab.artifacts.api import router as api_router
from commonlab.artifacts.hub import router as hub_router
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.store import ObjectStore

__all__ = ["mount_artifacts", "registry_for"]


def registry_for(facility: object) -> Registry:
    settings = facility.settings  # type: ignore[attr-defined]
    return Registry(
        store=ObjectStore(settings.home / "objects"),
        signer=facility.signer,  # type: ignore[attr-defined]
        base_url=settings.base_url,
        chunk_bytes=settings.max_upload_chunk_bytes,
    )


def mount_artifacts(app: FastAPI) -> None:
    app.state.artifacts = registry_for(app.state.facility)
    app.include_router(api_router)
    # Last: its /{namespace}/{name}/resolve/... pattern must not shadow anything else.
    app.include_router(hub_router)
