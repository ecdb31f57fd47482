"""Every byte served from the store is someone's upload: each route that sends stored bytes
(a download, a Hub resolve, a record's member; GET and HEAD, whole, a range, or a range that
cannot be satisfied) sends `nosniff` and a sandbox CSP, so an uploaded page opened on the
facility's origin can neither be sniffed into HTML nor run script."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from commonlab.artifacts import api, hub
from commonlab.portal import artifacts_views
from tests.artifacts.helpers import push
from tests.artifacts.test_api import make_repo, researcher  # noqa: F401

# An upload that a browser would happily run, if it were let.
PAGE = b"<!doctype html><script>alert(document.cookie)</script>"
RECORD = b'{"text": "<script>alert(1)</script>"}\n'

# Each route that streams stored bytes, by its path, with the URL that asks it.
STREAMING = {
    "/api/v1/artifacts/{kinds}/{namespace}/{name}/versions/{rev}/files/{path:path}": (
        "/api/v1/artifacts/{data}/versions/1/files/page.html"
    ),
    "/api/v1/artifacts/{kinds}/{namespace}/{name}/versions/{rev}/records/{index}/media": (
        "/api/v1/artifacts/{data}/versions/1/records/0/media?file=data.jsonl&member=text"
    ),
    "/datasets/{namespace}/{name}/resolve/{rev}/{path:path}": (
        "/datasets/{data_id}/resolve/main/page.html"
    ),
    "/{namespace}/{name}/resolve/{rev}/{path:path}": "/{model_id}/resolve/main/page.html",
}


def _stored_bytes_routes() -> set[str]:
    """The artifacts routes whose answer is a stored file or a part of one: a path into a
    version's files, or a record's member (REST, Hub-compatible and portal routers)."""
    return {
        route.path
        for router in (api.router, hub.router, artifacts_views.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        and "GET" in route.methods
        and (
            ("{path:path}" in route.path and "/tree/" not in route.path)
            or route.path.endswith("/media")
        )
    }


def test_the_walk_covers_every_route_that_serves_stored_bytes():
    assert _stored_bytes_routes() == set(STREAMING)


@pytest.fixture
def urls(client, researcher):  # noqa: F811
    h = researcher["headers"]
    data = make_repo(client, h, name="pages")
    assert push(client, h, data, {"page.html": PAGE, "data.jsonl": RECORD}).status_code == 201
    model = make_repo(client, h, kind="model", name="pages")
    assert push(client, h, model, {"page.html": PAGE}).status_code == 201
    fill = {"data": data, "data_id": data.split("/", 1)[1], "model_id": model.split("/", 1)[1]}
    return {route: url.format(**fill) for route, url in STREAMING.items()}


@pytest.mark.parametrize("route", sorted(STREAMING))
@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 200),
        ("HEAD", {}, 200),
        ("GET", {"range": "bytes=0-3"}, 206),
        ("GET", {"range": "bytes=99999-"}, 416),
    ],
)
def test_stored_bytes_are_never_sniffed_nor_run(client, urls, route, method, headers, status):
    got = client.request(method, urls[route], headers=headers)
    assert got.status_code == status, got.text
    assert got.headers["x-content-type-options"] == "nosniff"
    policy = [part.strip() for part in got.headers["content-security-policy"].split(";")]
    assert "sandbox" in policy and "default-src 'none'" in policy
