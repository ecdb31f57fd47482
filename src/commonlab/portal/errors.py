"""Errors on portal pages are HTML pages; errors under /api and /log stay problem+json.

The API's handlers (commonlab.http) are kept and called for API paths; for every other path
the same errors render the portal's error page with the same status and a message a person
can act on. A bad request never becomes a 500, and an error page never changes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from commonlab.errors import CommonlabError, field_and_reason
from commonlab.http import allowed_methods
from commonlab.portal.session import raw_session
from commonlab.portal.templating import render

__all__ = ["PortalError", "error_page", "install_portal_errors", "is_portal_path"]

log = logging.getLogger("commonlab.portal")
Handler = Callable[[Request, Any], Awaitable[Response]]
# What stays machine-readable: the API, the tiled log and the OpenAPI docs, and the
# well-known documents clients read (OAuth's metadata).
_MACHINE_PREFIXES = ("/api/", "/log/", "/.well-known/")

_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Refused",
    404: "Page not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    422: "Bad request",
    500: "Something went wrong",
    503: "Busy",
}


class PortalError(Exception):
    """A portal page refusing a request, with the status and the line a person reads."""

    def __init__(self, status: int, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title or _TITLES.get(status, "Error")


def is_portal_path(path: str) -> bool:
    return not (path in ("/api", "/log") or path.startswith(_MACHINE_PREFIXES))


def error_page(
    request: Request, status: int, message: str, *, title: str | None = None
) -> Response:
    # The header's sign-in state is a guess from the cookie: an error page reads no database.
    return render(
        "error.html",
        {
            "title": title or _TITLES.get(status, "Error"),
            "status": status,
            "message": message,
            "viewer": None,
            "has_session": raw_session(request) is not None,
            "origin": request.app.state.facility.origin,
        },
        status=status,
        private=True,
    )


def _validation_message(exc: RequestValidationError) -> str:
    errors = list(exc.errors())
    if not errors:
        return "this request's parameters are not valid"
    first = errors[0]
    where, reason = field_and_reason(first, hide=("query", "path"))
    return f"{where or 'a parameter'}: {reason}. Check the address, or start again from the menu."


def _portal_message(status: int, exc: Exception) -> str:
    if isinstance(exc, CommonlabError):
        return exc.message
    if isinstance(exc, StarletteHTTPException):
        if status == 404:
            return "There is no page at this address. Check it, or start again from the menu."
        if status == 405:
            return "This page does not take that kind of request."
        return str(exc.detail)
    if isinstance(exc, RequestValidationError):
        return _validation_message(exc)
    if isinstance(exc, IntegrityError):
        return "This conflicts with something that changed meanwhile: reload and try again."
    if isinstance(exc, OperationalError):
        return "The facility's database is busy or unreachable: try again shortly."
    return "An unexpected error occurred; it has been logged."


def _expected(exc: Exception) -> bool:
    """Whether `exc` is a condition the facility names (its own errors, HTTP refusals, a
    database that is busy or unreachable) rather than a bug, whose traceback is logged."""
    return isinstance(exc, CommonlabError | StarletteHTTPException | OperationalError)


def _status(exc: Exception) -> int:
    if isinstance(exc, CommonlabError):
        return exc.status
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 400  # a junk query value or path: the address is wrong, not a form field
    if isinstance(exc, IntegrityError):
        return 409
    if isinstance(exc, OperationalError):
        return 503
    return 500


def install_portal_errors(app: FastAPI) -> None:
    """Wrap the API's handlers so that portal paths get HTML. Call after the API installs its."""

    async def _portal_error(request: Request, exc: PortalError) -> Response:
        return error_page(request, exc.status, exc.message, title=exc.title)

    app.add_exception_handler(PortalError, _portal_error)  # type: ignore[arg-type]
    app.state.html_refusal = _html_refusal
    for exc_class in (
        StarletteHTTPException,
        CommonlabError,
        RequestValidationError,
        IntegrityError,
        OperationalError,
        Exception,
    ):
        original = app.exception_handlers.get(exc_class)
        app.add_exception_handler(exc_class, _wrap(original))


def _html_refusal(scope: Scope, status: int, title: str, message: str) -> Response | None:
    """A refusal made before any route runs (the rate limit), as the portal's error page
    for a portal path; None for the API's paths, which answer problem+json."""
    request = Request(scope)
    if not is_portal_path(request.url.path):
        return None
    return error_page(request, status, message[:1].upper() + message[1:] + ".", title=title)


def _wrap(original: Handler | None) -> Handler:
    async def handler(request: Request, exc: Any) -> Response:
        if original is not None and not is_portal_path(request.url.path):
            return await original(request, exc)
        status = _status(exc)
        message = _portal_message(status, exc)
        if status >= 500 and _expected(exc):
            # A provider that is down, a busy database: known conditions, one line each.
            log.warning("portal %d on %s: %s", status, request.url.path, message)
        elif status >= 500:
            log.exception("portal error on %s", request.url.path, exc_info=exc)
        response = error_page(request, status, message)
        if status == 405:  # RFC 9110: a 405 names the methods the page takes
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    return handler
