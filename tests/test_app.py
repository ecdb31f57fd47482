"""The application shell: health, the OpenAPI document, and problem+json everywhere."""

from __future__ import annotations

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
        if path.startswith("/api/v1/") and path not in {"/api/v1/openapi.json", "/api/v1/docs"}:
            assert path in documented, path


def test_wrong_content_type_is_a_4xx(client, operator):
    response = client.post(
        "/api/v1/institutions",
        content=b"name=x",
        headers={**operator, "content-type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= response.status_code < 500
    problem(response)
