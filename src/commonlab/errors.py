"""One error tree for the whole facility.

Every error a person can cause carries a message that says what to fix. The API turns these
into RFC 9457 problem+json responses; the CLI prints the message on one line.
`from_validation` turns a document pydantic refused into that one line.

    CommonlabError
    ├── InvalidInput          422  the request is well-formed but a value is wrong
    ├── Unauthenticated       401  no valid credentials where they are needed
    ├── AccessDenied          403  authenticated, but the policy says no (with the reason)
    ├── NotFound              404
    ├── Conflict              409  the request contradicts the current state
    └── ConfigError           (start-up) a setting has a bad value
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "AccessDenied",
    "CommonlabError",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Unauthenticated",
    "field_and_reason",
    "from_validation",
]


class CommonlabError(Exception):
    """Base of every error commonlab raises on purpose."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidInput(CommonlabError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class Unauthenticated(CommonlabError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class AccessDenied(CommonlabError):
    status = 403
    slug = "access-denied"
    title = "Access denied"


class NotFound(CommonlabError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(CommonlabError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class ConfigError(CommonlabError):
    """A setting has a bad value; start-up stops with this one line."""

    slug = "config"
    title = "Configuration error"


def field_and_reason(error: Mapping[str, Any], *, hide: Collection[str] = ()) -> tuple[str, str]:
    """One of pydantic's complaints as a person reads it: the field's dotted path (`""` for
    the whole document; without the request parts in `hide`, such as `body`) and the reason,
    less pydantic's `Value error, ` prefix, which says nothing to the person fixing it."""
    field = ".".join(str(part) for part in error.get("loc", ()) if part not in hide)
    return field, str(error.get("msg", "not valid")).removeprefix("Value error, ")


def from_validation(
    exc: ValidationError, *, where: str, document: str | None = None
) -> InvalidInput:
    """The first problem pydantic found, on one line that names the field to fix.

    A document read from `where` (a file) names its fields from its top, or `document` when
    the document as a whole is wrong: `fleet.toml: partitions.0.nodes: ...`. Without
    `document`, `where` is a part of a request and its fields are named under it:
    `payload.level: ...`.
    """
    field, reason = field_and_reason(exc.errors()[0])
    if document is not None:
        return InvalidInput(f"{where}: {field or document}: {reason}")
    return InvalidInput(f"{where}.{field}: {reason}" if field else f"{where}: {reason}")
