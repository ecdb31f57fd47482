"""Portal pages (filled in by the portal work)."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["mount_portal"]


def mount_portal(app: FastAPI) -> None:
    return None
