"""A regulation version as every domain reads it (`InForce`), and the built-in provisional one.

Until the council adopts its first regulation, the provisional regulation is in force
(version 0). Which version is in force at a moment is `service.in_force`'s answer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commonlab.regulation.document import Regulation, default_regulation, regulation_hash

__all__ = ["InForce", "adopted", "provisional"]


@dataclass(frozen=True)
class InForce:
    version: int
    regulation: Regulation
    sha256: str
    adopted_at: datetime | None
    motion_id: int | None = None  # the motion that adopted it (None for the provisional one)


@functools.cache
def provisional() -> InForce:
    """Version 0: the built-in regulation, in force until the council adopts one."""
    regulation = default_regulation()
    return InForce(0, regulation, regulation_hash(regulation), None)


def adopted(
    version: int,
    document: dict[str, Any],
    sha256: str,
    adopted_at: datetime | None,
    motion_id: int | None,
) -> InForce:
    """An adopted version, its stored document parsed once per process."""
    return InForce(version, _parsed(sha256, document), sha256, adopted_at, motion_id)


# An adopted version never changes, and its hash names it: parse each one once (admission
# reads the regulation for every job).
_PARSED: dict[str, Regulation] = {}


def _parsed(sha256: str, document: dict[str, Any]) -> Regulation:
    regulation = _PARSED.get(sha256)
    if regulation is None:
        regulation = _PARSED[sha256] = Regulation.model_validate(document)
    return regulation
