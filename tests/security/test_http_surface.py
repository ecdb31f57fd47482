"""Issue 13, finding 9: the HTTP surface, probed as an outsider would.

Each test walks the whole OpenAPI document (or the whole route table), so a route added
tomorrow is probed too: integers past 64 bits, oversized chunked bodies, wrong methods, and
the docs page's origins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import problem, record_entries

TOO_BIG = 2**63  # one past what a signed 64-bit column holds
PLACEHOLDER = {"integer": "1", "string": "x"}


def _spec(client: Any) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _integer_slots(
    spec: dict[str, Any], schema: dict[str, Any], at: tuple[Any, ...] = (), depth: int = 0
) -> Iterator[tuple[Any, ...]]:
    """The JSON path of every integer a body of this schema may carry (lists as index 0)."""
    if depth > 8:
        return
    schema = _resolve(spec, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _integer_slots(spec, option, at, depth + 1)
    if schema.get("type") == "integer":
        yield at
    for name, sub in schema.get("properties", {}).items():
        yield from _integer_slots(spec, sub, (*at, name), depth + 1)
    if isinstance(schema.get("items"), dict):
        yield from _integer_slots(spec, schema["items"], (*at, 0), depth + 1)


def _nest(at: tuple[Any, ...], value: Any) -> Any:
    for key in reversed(at):
        value = [value] if key == 0 else {key: value}
    return value


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def _url(path: str, operation: dict[str, Any], spec: dict[str, Any], **values: Any) -> str:
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            kind = _resolve(spec, param["schema"]).get("type", "string")
            value = values.get(param["name"], PLACEHOLDER.get(kind, "x"))
            path = path.replace("{" + param["name"] + "}", str(value))
    return path


def _integer_probes(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(method, url, request kwargs, the field the 422 must name) for every integer input."""
    for method, path, operation in _operations(spec):
        for param in operation.get("parameters", []):
            if not any(True for _ in _integer_slots(spec, param["schema"])):
                continue
            field = f"{param['in']}.{param['name']}"
            if param["in"] == "path":
                url = _url(path, operation, spec, **{param["name"]: TOO_BIG})
                yield method, url, {}, field
            elif param["in"] == "query":
                url = _url(path, operation, spec)
                yield method, url, {"params": {param["name"]: TOO_BIG}}, field
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            for at in _integer_slots(spec, content["application/json"]["schema"]):
                body = _nest(at, TOO_BIG)
                field = ".".join(str(part) for part in at) or "body"
                yield method, _url(path, operation, spec), {"json": body}, field


def test_an_integer_past_64_bits_is_refused_everywhere(client, app, operator):
    """Every integer path, query and body field of every operation: 2**63 is a 422 naming the
    field, never a 500 (SQLite's OverflowError), and nothing is written."""
    spec = _spec(client)
    before = record_entries(client, app)
    probes = list(_integer_probes(spec))
    assert len(probes) > 60  # the walk reached the API, not an empty document
    refused = []
    for method, url, kwargs, field in probes:
        response = client.request(method, url, headers=operator, **kwargs)
        if response.status_code != 422:
            refused.append((method, url, field, response.status_code, response.text[:200]))
            continue
        if method == "head":  # no body to name the field; its GET twin is probed too
            continue
        named = [err["field"] for err in problem(response)["errors"]]
        if not any(name == field or name.startswith(field + ".") for name in named):
            refused.append((method, url, field, named))
    assert refused == [], "\n".join(map(str, refused))
    assert record_entries(client, app) == before


def test_a_chunked_body_over_the_limit_is_413_like_a_declared_one(client, app, facility, operator):
    limit = facility.settings.max_body_bytes
    before = client.get("/api/v1/institutions", headers=operator).json()

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096
        yield b'", "country": "FR", "kind": "university"}'

    streamed = client.post("/api/v1/institutions", content=chunks(), headers=operator)
    assert "content-length" not in streamed.request.headers  # sent chunked
    assert streamed.status_code == 413, streamed.text
    assert str(limit) in problem(streamed)["detail"]
    declared = client.post("/api/v1/institutions", content=b"x" * (limit + 1), headers=operator)
    assert declared.status_code == 413
    assert client.get("/api/v1/institutions", headers=operator).json() == before


def test_every_405_names_the_methods_the_path_takes(client):
    """RFC 9110 §15.5.6: a 405 carries Allow, listing every method some route takes at that
    path (a collection's GET and POST are two routes), and no method that would be a 405."""
    spec = _spec(client)
    checked = 0
    for path, item in spec["paths"].items():
        documented = {method.upper() for method in item}
        wrong = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in documented)
        url = _url(path, next(iter(item.values())), spec)
        response = client.request(wrong, url)
        assert response.status_code == 405, (wrong, url, response.status_code)
        problem(response)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert documented <= allowed, (path, allowed)
        # More than documented only where another route takes the path (the Hub's /api/...).
        for method in allowed - documented:
            assert client.request(method, url).status_code != 405, (method, url)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/signin", "GET, POST"),
        ("POST", "/", "GET"),
        ("DELETE", "/record", "GET"),
        ("DELETE", "/static/portal.css", "GET, HEAD"),
        ("POST", "/api/v1/docs", "GET"),
        ("PUT", "/api/v1/docs/assets/swagger-ui.css", "GET, HEAD"),
    ],
)
def test_a_405_on_a_page_or_a_static_file_names_its_methods_too(client, method, path, allowed):
    """The portal answers HTML errors and mounts answer their own 405s: Allow rides on each."""
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed


def test_the_docs_page_loads_nothing_from_another_origin(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.text
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert references and all(ref.startswith("/api/v1/") for ref in references), references
    assert "//" not in "".join(references)
    for ref in references:
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].split(";")[0] in {
            "text/css",
            "text/javascript",
            "application/javascript",
            "image/png",
        }
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "http" not in script_src and "*" not in script_src
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.browser
def test_the_docs_page_runs_under_its_policy_in_a_browser(chromium, live_server):
    """Swagger UI renders the operations with its CSP on: the inline start-up script's hash
    is right, and the browser fetched nothing from another origin."""
    context = chromium.new_context(base_url=live_server.url)
    try:
        page = context.new_page()
        requests: list[str] = []
        violations: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on(
            "console",
            lambda msg: violations.append(msg.text) if "Content Security" in msg.text else None,
        )
        page.goto("/api/v1/docs")
        page.wait_for_selector(".opblock")
        assert page.locator(".opblock").count() > 50
        assert violations == []
        assert all(url.startswith(live_server.url) for url in requests), requests
    finally:
        context.close()
