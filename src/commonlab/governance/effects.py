"""What a passing motion does, by kind: a port every domain whose state a motion changes
plugs into. Governance owns the registry; the domain that owns the state owns the effect
(governance/motions.py, allocation/, compute/, identity/motions.py), and `wiring.connect()`
registers them all. A kind with no effect registered cannot be tabled, and lapses if it
passes: the registry fails closed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from commonlab.errors import ConfigError, from_validation
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import PAYLOADS
from commonlab.policy.principal import Principal

__all__ = ["Effect", "effect_of", "parse_payload", "register", "registered"]


@dataclass(frozen=True)
class Effect:
    """One motion kind's effect, run in the transaction that tables or decides the motion.

    `check(db, payload)` runs when the motion is tabled, so a motion that could never take
    effect is refused up front. `apply(db, authority, payload)` runs when it passes, acting
    as `authority` (the passed motion, `policy.principal.motion_authority`), which it
    authorizes and names on the record; it checks again first, since the facility may have
    changed while the vote was open.
    """

    check: Callable[[Session, Any], None]
    apply: Callable[[Session, Principal, Any], None]


_REGISTRY: dict[MotionKind, Effect] = {}


def register(kind: MotionKind, effect: Effect) -> None:
    """Register what `kind` does; the same effect again is a no-op, another one an error."""
    known = _REGISTRY.setdefault(kind, effect)
    if known != effect:
        raise ValueError(f"{kind} motions already have an effect: {known}")


def registered() -> frozenset[MotionKind]:
    """The kinds whose effect is registered (every kind, once the facility is wired)."""
    return frozenset(_REGISTRY)


def effect_of(kind: MotionKind) -> Effect:
    """What `kind` does; ConfigError when no domain registered it (never a silent pass)."""
    effect = _REGISTRY.get(kind)
    if effect is None:
        raise ConfigError(
            f"{kind} motions have no effect on this facility: the domain that owns what they "
            "change has not registered it (commonlab.wiring.connect() runs when it opens)"
        )
    return effect


def parse_payload(kind: MotionKind, payload: dict[str, Any]) -> BaseModel:
    """A motion's payload, checked against its kind's schema."""
    try:
        return PAYLOADS[kind].model_validate(payload)
    except ValidationError as exc:
        raise from_validation(exc, where="payload") from None
