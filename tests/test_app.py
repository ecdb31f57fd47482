"""The application shell: health, the OpenAPI document, and problem+json everywhere."""

from __future__ import annotations

import json
import warnings

from commonlab.apidocs import DOCS_URL
from tests.helpers import problem


def test_health_names_the_log(client, facility):
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["origin"] == facility.origin


def test_openapi_describes_every_api_route(client, app):
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "commonlab"
    documented = set(spec["paths"])
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/v1/") and not path.startswith(("/api/v1/openapi.json", DOCS_URL)):
            assert path in documented, path


def test_openapi_gives_every_operation_its_own_id_without_a_warning(app):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = app.openapi()
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_every_operation_documents_its_problem_responses(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(spec["components"]["schemas"])
    assert {"type", "title", "status", "detail"} <= set(
        spec["components"]["schemas"]["Problem"]["required"]
    )
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status in ("400", "401", "403", "404", "409", "413", "422"):
                content = operation["responses"][status]["content"]
                expected = ["application/problem+json"]
                if path.startswith("/api/v1/oauth/") and status in ("400", "401"):
                    # RFC 6749 §5.2: OAuth clients read `{"error": ...}` as application/json
                    # there, beside the problem+json any route may give (a body too large).
                    expected.append("application/json")
                assert sorted(content) == sorted(expected), (method, path, status)
                schema = content["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}


def test_openapi_states_the_64_bit_bounds_exactly(client):
    """2**63 - 1 must not come out of the document as the float 2**63, a value refused."""
    text = client.get("/api/v1/openapi.json").text
    assert "9.223372036854776e+18" not in text
    bounds = [
        schema[key]
        for schema in _schemas(json.loads(text))
        if schema.get("type") == "integer"
        for key in ("minimum", "maximum")
        if key in schema
    ]
    assert all(isinstance(bound, int) and -(2**63) <= bound < 2**63 for bound in bounds)
    assert 2**63 - 1 in bounds


def _schemas(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_wrong_content_type_is_a_4xx(client, operator):
    response = client.post(
        "/api/v1/institutions",
        content=b"name=x",
        headers={**operator, "content-type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= response.status_code < 500
    problem(response)
