"""The API's description and its docs page: one OpenAPI document that tells the truth (every
problem+json answer, exact integer bounds), and Swagger UI served from the package, so no
third-party script ever runs on the cookie's origin."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from commonlab.bounded import INT64_MAX, INT64_MIN
from commonlab.http import document_problems

__all__ = ["DOCS_ASSETS", "DOCS_URL", "OPENAPI_URL", "install_openapi", "mount_api_docs"]

OPENAPI_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/v1/docs"
DOCS_ASSETS = "/api/v1/docs/assets"


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI builder with one whose document is built once and cached."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _exact_integer_bounds(spec)
            app.openapi_schema = document_problems(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _exact_integer_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model stores bounds as floats: 2**63 - 1 comes out as 2**63, a value
    the API refuses. An integer's bounds go back to integers, the 64-bit ones exactly."""
    if isinstance(node, list):
        for item in node:
            _exact_integer_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for key, edge in (("maximum", INT64_MAX), ("minimum", INT64_MIN)):
            value = node.get(key)
            if isinstance(value, float):
                node[key] = edge if abs(value) >= 2.0**63 else int(value)
    for value in node.values():
        _exact_integer_bounds(value)


def mount_api_docs(app: FastAPI) -> None:
    """Swagger UI at /api/v1/docs, its script and styles from the swagger-ui-bundle package.

    The page's one inline script (Swagger UI's start-up) is allowed by its hash; nothing else
    runs, and nothing loads from another origin.
    """
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{app.title} API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        oauth2_redirect_url=None,
    ).body
    headers = {
        "Content-Security-Policy": _docs_csp(page),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)


def _docs_csp(page: bytes) -> str:
    inline = re.findall(rb"<script>(.*?)</script>", page, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in inline
    )
    # Swagger UI sets style attributes and draws icons as data: SVGs.
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
