"""Portal pages for open models and datasets: browse, a repository, a version (card, files,
licences, lineage, signature status). Server-rendered; no page needs JavaScript."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
