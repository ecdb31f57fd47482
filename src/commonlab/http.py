"""What every API route shares: problem+json errors (RFC 9457), the body-size limit, the
database session and the principal behind a request.

Routes stay thin: parse, get the principal, call one service function, render.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commonlab.bounded import MAX_ID
from commonlab.errors import CommonlabError, Unauthenticated, field_and_reason
from commonlab.pagination import MAX_LIMIT, PageParams
from commonlab.policy.principal import PUBLIC, Principal

__all__ = [
    "BYTES_RESPONSES",
    "Authenticator",
    "BodyLimit",
    "CurrentPrincipal",
    "DbSession",
    "Pagination",
    "Problem",
    "allowed_methods",
    "document_problems",
    "install_authenticator",
    "install_error_handlers",
    "problem",
]

log = logging.getLogger("commonlab.http")
PROBLEM_TYPE_BASE = "https://commonlab.example/problems/"
PROBLEM_JSON = "application/problem+json"
# The errors any operation may answer, documented on every one of them.
ERROR_RESPONSES = {
    400: "Malformed request: the body is not valid JSON",
    401: "Authentication required: the token is missing, unknown, expired or revoked",
    403: "Access denied: the policy refuses this principal (the detail says why)",
    404: "Not found, or not visible to this principal",
    409: "Conflict with the current state: reload and retry",
    413: "Request body too large",
    422: "Invalid input: `errors` names each field and what to fix",
    429: "Too many requests from this token or address: retry after `Retry-After` seconds",
    503: "Database busy: retry shortly",
}


# Routes that answer with stored bytes (of any media type), whole or a byte range.
_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
BYTES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the bytes, with their media type", "content": _BYTES},
    206: {"description": "the byte range asked for (Range)", "content": _BYTES},
    416: {"description": "the range asked for is outside the file", "content": _BYTES},
}


class ProblemField(BaseModel):
    field: str = Field(description="where the bad value is: a body field path, query.x, path.x")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response of the API."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str = Field(description="what went wrong and what to do about it")
    errors: list[ProblemField] | None = Field(
        default=None, description="with 422: every invalid field"
    )


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Document the problem+json answers on every operation of an OpenAPI document, in place
    of FastAPI's `HTTPValidationError` (which the API never sends), so that schema-driven
    clients and fuzzers see the responses the API gives."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                documented = responses.get(str(status), {})
                if PROBLEM_JSON not in documented.get("content", {}):
                    responses[str(status)] = {"description": description, "content": content}
    return spec


def problem(status: int, title: str, detail: str, *, slug: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _validation_detail(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for err in errors:
        field, message = field_and_reason(err, hide=("body",))
        if err.get("type") == "extra_forbidden":
            message = "unknown field: remove it (see the API schema at /api/v1/openapi.json)"
        if err.get("type") == "missing":
            message = "this field is required"
        fields.append({"field": field or "body", "message": message})
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return f"{first['field']}: {first['message']}{more}", fields


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CommonlabError)
    async def _commonlab(_: Request, exc: CommonlabError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        response = problem(exc.status, exc.title, exc.message, slug=exc.slug, **exc.extra)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            reason = next(e.get("ctx", {}).get("error", "") for e in errors)
            return problem(
                400,
                "Malformed JSON",
                f"the request body is not valid JSON ({reason}): send a JSON object",
                slug="malformed-json",
            )
        detail, fields = _validation_detail(errors)
        return problem(422, "Invalid input", detail, slug="invalid-input", errors=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route: see /api/v1/openapi.json for the routes"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = "this route does not take that method: see /api/v1/openapi.json"
            headers["Allow"] = ", ".join(allowed_methods(request))
        response = problem(
            exc.status_code, detail.split(":")[0], detail, slug=f"http-{exc.status_code}"
        )
        response.headers.update(headers)
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced past a uniqueness check; the database kept only one.
        log.info("integrity error: %s", exc.orig)
        return problem(
            409,
            "Conflict",
            "this conflicts with an existing record: reload and retry",
            slug="conflict",
        )

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold; nothing was written.
        return problem(
            422,
            "Invalid input",
            "a value contains characters or a size the database cannot store (such as a NUL "
            "character): remove them",
            slug="invalid-input",
        )

    @app.exception_handler(OperationalError)
    async def _busy(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.orig)
        return problem(
            503,
            "Database busy",
            "the database is busy or unreachable: retry shortly",
            slug="database-busy",
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; it has been logged",
            slug="internal",
        )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this request's path (RFC 9110: a 405 names them).

    Starlette's own Allow lists only the first route that matched the path, and one path is
    often served by several routes (GET and POST of a collection).
    """
    # Matched from the app's top: inside a mount the scope's root_path has grown.
    scope = {**request.scope, "root_path": request.scope.get("app_root_path", "")}
    allowed = set()
    for route in request.app.router.routes:
        if isinstance(route, Mount):
            # Our mounts serve static files: reads only.
            if route.matches(scope)[0] is not Match.NONE:
                allowed |= {"GET", "HEAD"}
            continue
        for method in _METHODS:
            if route.matches({**scope, "method": method})[0] is Match.FULL:
                allowed.add(method)
    return sorted(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BodyLimit:
    """Refuse request bodies above `max_bytes` with 413, whether declared or streamed.

    Paths under a prefix in `larger` get that prefix's limit instead (upload chunks).
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    def _limit(self, path: str) -> int:
        return next((n for p, n in self.larger.items() if path.startswith(p)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        seen = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                exceeded = True
                raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body ran over, whatever the app answers (FastAPI turns an error while
            # reading the body into a 400) gives way to the 413.
            nonlocal started
            if exceeded and not started:
                return
            started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded and not started:
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(
            413,
            "Request body too large",
            f"the body exceeds {limit} bytes: send less, or upload files in parts",
            slug="too-large",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _db(request: Request) -> AsyncIterator[Session]:
    # On the event loop, not in the threadpool: making a Session touches no database, and
    # a sync dependency costs two thread hand-offs per request (in and out). Closing one
    # that still holds a transaction (a route that read outside `db.begin()`) rolls back on
    # the database, which is left to a worker thread.
    session = request.app.state.db.session()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


DbSession = Annotated[Session, Depends(_db)]


# How a request proves who sent it. Each way is installed by the domain that owns it (identity:
# bearer tokens; the portal: its session cookie), so this module knows none of them. The first
# that recognises the request decides; one that recognises it but refuses raises
# Unauthenticated. A request none recognises is the public's: with nothing installed, nobody
# is anybody (fail closed).
Authenticator = Callable[[Request, Session], "Principal | None"]


def install_authenticator(app: FastAPI, authenticator: Authenticator) -> None:
    """Let `authenticator` identify the senders of this app's requests, after those before."""
    if not hasattr(app.state, "authenticators"):
        app.state.authenticators = []
    app.state.authenticators.append(authenticator)


def _principal(request: Request, db: DbSession) -> Principal:
    for authenticate in getattr(request.app.state, "authenticators", ()):
        principal = authenticate(request, db)
        if principal is not None:
            return principal
    return PUBLIC


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the `next` cursor")] = None,
) -> PageParams:
    return PageParams(limit=limit, after=after)


Pagination = Annotated[PageParams, Depends(_page)]
