"""Where the domains' few upward needs are connected, in one place.

Domains form layers (docs/architecture.md): a lower one never imports a higher one. Where a
lower domain needs an answer only a higher one has — what a passing motion does to an
allocation, a partition or a clearance; which inputs a job declared when the registry checks
what it publishes — the lower one declares a port and this module plugs the higher one in.
`connect()` runs when a facility opens (and is idempotent); an unconnected port fails closed.
"""

from __future__ import annotations

__all__ = ["connect"]


def connect() -> None:
    """Plug every higher domain's answer into the port of the lower one that asks."""
