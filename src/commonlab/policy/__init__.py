"""Containment levels, the Cedar policy set, and the one authorization point."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commonlab.policy.actions import Action
    from commonlab.policy.engine import (
        Decision,
        authorize,
        decide,
        policy_set_hash,
        validate_policy_set,
    )
    from commonlab.policy.resources import Resource

__all__ = [
    "Action",
    "Decision",
    "Resource",
    "authorize",
    "decide",
    "policy_set_hash",
    "validate_policy_set",
]

# Exported lazily: identity.principal imports policy.levels, and policy.actions imports
# identity.principal, so importing the engine here eagerly would be a circular import.
_HOMES = {
    "Action": "commonlab.policy.actions",
    "Resource": "commonlab.policy.resources",
    "Decision": "commonlab.policy.engine",
    "authorize": "commonlab.policy.engine",
    "decide": "commonlab.policy.engine",
    "policy_set_hash": "commonlab.policy.engine",
    "validate_policy_set": "commonlab.policy.engine",
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
