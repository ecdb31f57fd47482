"""What every API route shares: problem+json errors (RFC 9457), the body-size limit, the
database session and the principal behind a request.

Routes stay thin: parse, get the principal, call one service function, render.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commonlab.errors import CommonlabError, Unauthenticated
from commonlab.identity.principal import PUBLIC, Principal
from commonlab.pagination import MAX_LIMIT, PageParams

__all__ = [
    "BodyLimit",
    "CurrentPrincipal",
    "DbSession",
    "Pagination",
    "install_error_handlers",
    "problem",
]

log = logging.getLogger("commonlab.http")
PROBLEM_TYPE_BASE = "https://commonlab.example/problems/"
SESSION_COOKIE = "commonlab_session"
# Path ids stay inside what every database's BIGINT and JSON numbers hold exactly.
MAX_ID = 2**53


def problem(status: int, title: str, detail: str, *, slug: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


def _validation_detail(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for err in errors:
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field: remove it (see the API schema at /api/v1/openapi.json)"
        if err.get("type") == "missing":
            message = "this field is required"
        fields.append({"field": _field_path(tuple(err.get("loc", ()))), "message": message})
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route: see /api/v1/openapi.json for the routes"
        if exc.status_code == 405:
            detail = "this route does not take that method: see /api/v1/openapi.json"
        return problem(
            exc.status_code, detail.split(":")[0], detail, slug=f"http-{exc.status_code}"
        )

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

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
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


def _db(request: Request) -> Iterator[Session]:
    session = request.app.state.db.session()
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(_db)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("use the header 'Authorization: Bearer <token>'")
        return value.strip()
    return None


def _principal(request: Request, db: DbSession) -> Principal:
    from commonlab.identity.service import authenticate
    from commonlab.portal.session import require_api_csrf, token_from_cookie

    token = bearer_token(request)
    if token is None and (token := token_from_cookie(request)) is not None:
        # A browser sends the cookie on any site's request: changes need the CSRF token too.
        require_api_csrf(request)
    if token is None:
        return PUBLIC
    return authenticate(db, token)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def _page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="the `next` cursor")] = None,
) -> PageParams:
    return PageParams(limit=limit, after=after)


Pagination = Annotated[PageParams, Depends(_page)]
