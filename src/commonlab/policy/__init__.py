"""Containment levels, who is asking (the principal), the Cedar policy set, and the one
authorization point."""

from __future__ import annotations

from commonlab.policy.actions import Action
from commonlab.policy.engine import (
    Decision,
    authorize,
    authorize_inside,
    decide,
    may_see_inside,
    policy_set_hash,
    validate_policy_set,
)
from commonlab.policy.resources import Resource

__all__ = [
    "Action",
    "Decision",
    "Resource",
    "authorize",
    "authorize_inside",
    "decide",
    "may_see_inside",
    "policy_set_hash",
    "validate_policy_set",
]
