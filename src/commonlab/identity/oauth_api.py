"""The facility as an OAuth 2.0 authorization server for its own command line: its metadata
(RFC 8414), the device authorization endpoint and the token endpoint for the device code
grant (RFC 8628). Thin: parse the form, call `device_grant`, answer in OAuth's JSON.

These endpoints speak OAuth, not problem+json: a refusal is RFC 6749 §5.2's
`{"error": ..., "error_description": ...}` (400, or 401 for an unknown client), so that any
standard client understands it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from commonlab.db import utcnow
from commonlab.http import PROBLEM_JSON, DbSession
from commonlab.identity import device_grant
from commonlab.identity.device_grant import DEVICE_CODE_GRANT, OAuthError
from commonlab.policy.principal import Scope

__all__ = [
    "DEVICE_AUTHORIZATION_PATH",
    "METADATA_PATH",
    "TOKEN_PATH",
    "VERIFICATION_PATH",
    "router",
]

METADATA_PATH = "/.well-known/oauth-authorization-server"
DEVICE_AUTHORIZATION_PATH = "/api/v1/oauth/device_authorization"
TOKEN_PATH = "/api/v1/oauth/token"
# The portal page where a signed-in person enters the user code (portal/device_views.py).
VERIFICATION_PATH = "/device"
FORM = "application/x-www-form-urlencoded"
# RFC 6749 §5.1: token responses are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(tags=["oauth"])


class OAuthErrorOut(BaseModel):
    error: str = Field(description="RFC 6749 §5.2 / RFC 8628 §3.5 error code")
    error_description: str = Field(description="what went wrong and what to do about it")


class DeviceAuthorizationOut(BaseModel):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class MetadataOut(BaseModel):
    issuer: str
    device_authorization_endpoint: str
    token_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    service_documentation: str


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OAuth error answers, documented beside the problem+json every route may give
    (a body too large, say), so `http.document_problems` keeps them."""
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        status: {
            "model": OAuthErrorOut,
            "description": "refused: `error` says why (RFC 6749 §5.2)",
            "content": problem,
        }
        for status in statuses
    }


def _base(request: Request) -> str:
    public = request.app.state.facility.settings.public_url
    return public.rstrip("/") or str(request.base_url).rstrip("/")


def _refusal(exc: OAuthError) -> JSONResponse:
    body = {"error": exc.error, "error_description": exc.message}
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="commonlab"'
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _form_only(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError(
            "invalid_request",
            f"send the parameters form-encoded ({FORM}), as OAuth 2.0 requires, not "
            f"{content_type or 'without a content type'}",
        )


@router.get(METADATA_PATH, response_model=MetadataOut, summary="OAuth metadata (RFC 8414)")
def metadata(request: Request) -> MetadataOut:
    base = _base(request)
    return MetadataOut(
        issuer=base,
        device_authorization_endpoint=base + DEVICE_AUTHORIZATION_PATH,
        token_endpoint=base + TOKEN_PATH,
        grant_types_supported=[DEVICE_CODE_GRANT],
        # No authorization endpoint: people sign in on the portal, devices by the device grant.
        response_types_supported=[],
        scopes_supported=[str(scope) for scope in Scope],
        token_endpoint_auth_methods_supported=["none"],
        service_documentation=base + "/api/v1/docs",
    )


@router.post(
    DEVICE_AUTHORIZATION_PATH,
    response_model=DeviceAuthorizationOut,
    responses=_refusals(400, 401),
    summary="Start a device's sign-in (RFC 8628 §3.1)",
)
def device_authorization(
    request: Request,
    db: DbSession,
    client_id: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form(description="space-separated: read write admin")] = None,
) -> Any:
    try:
        _form_only(request)
        started = device_grant.start(
            db,
            client_id=client_id,
            scope=scope,
            requested_from=request.client.host if request.client else None,
        )
    except OAuthError as exc:
        return _refusal(exc)
    verification = _base(request) + VERIFICATION_PATH
    body = DeviceAuthorizationOut(
        device_code=started.device_code,
        user_code=started.user_code,
        verification_uri=verification,
        verification_uri_complete=f"{verification}?user_code={started.user_code}",
        expires_in=started.expires_in,
        interval=started.interval,
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post(
    TOKEN_PATH,
    response_model=TokenOut,
    responses=_refusals(400, 401),
    summary="Fetch the token of an approved device (RFC 8628 §3.4)",
)
def token(
    request: Request,
    db: DbSession,
    grant_type: Annotated[str | None, Form()] = None,
    device_code: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
) -> Any:
    try:
        _form_only(request)
        if not grant_type:
            raise OAuthError("invalid_request", f"grant_type is missing: send {DEVICE_CODE_GRANT}")
        if grant_type != DEVICE_CODE_GRANT:
            raise OAuthError(
                "unsupported_grant_type",
                f"this facility issues tokens only for the grant type {DEVICE_CODE_GRANT}",
            )
        issued, secret = device_grant.exchange(db, client_id=client_id, device_code=device_code)
    except OAuthError as exc:
        return _refusal(exc)
    lifetime = issued.expires_at - utcnow()
    body = TokenOut(
        access_token=secret,
        expires_in=max(0, int(lifetime.total_seconds())),
        scope=" ".join(sorted(issued.scopes)),
    )
    return JSONResponse(body.model_dump(), headers=NO_STORE)
