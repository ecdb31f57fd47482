"""One error tree for the whole facility.

Every error a person can cause carries a message that says what to fix. The API turns these
into RFC 9457 problem+json responses; the CLI prints the message on one line.

    CommonlabError
    ├── InvalidInput          422  the request is well-formed but a value is wrong
    ├── Unauthenticated       401  no valid credentials where they are needed
    ├── AccessDenied          403  authenticated, but the policy says no (with the reason)
    ├── NotFound              404
    ├── Conflict              409  the request contradicts the current state
    └── ConfigError           (start-up) a setting has a bad value
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "CommonlabError",
    "ConfigError",
    "Conflict",
    "InvalidInput",
    "NotFound",
    "Unauthenticated",
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
