"""The public record: an append-only, verifiable log of everything the facility does.

Other domains write through `record.append(db, event, actor=..., subject=..., data=...)`
inside their own transaction; see `service.py`. The pure modules (`merkle`, `note`,
`checkpoint`, `tiles`, `canonical`) import nothing else, so a verifier can use them alone:
the service names below load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PUBLIC_ROLES", "actor_ref", "append", "data_since", "format_time", "savepoint"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from commonlab.record import service

        return getattr(service, name)
    raise AttributeError(f"module 'commonlab.record' has no attribute {name!r}")
