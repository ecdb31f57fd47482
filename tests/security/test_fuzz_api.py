"""Issue 13: the whole API fuzzed from its own OpenAPI document, as an operator and as a plain
member (the demo's PI), against a facility seeded like the demo.

Schemathesis generates requests for every operation from the document; each answer must be
no 5xx, a documented status, the documented media type, and a body that matches the
documented schema. The budget is bounded (examples per operation), so the run takes a couple
of minutes in CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from commonlab.apidocs import OPENAPI_URL
from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.operations.leader import lease_for
from tests.artifacts.helpers import push, safetensors_bytes
from tests.conftest import _reset_postgres
from tests.helpers import auth

# Examples per operation (each one sent as both principals): about 100 operations.
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def demo_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, dict]]:
    """A demo-like facility, on SQLite (where an integer past 64 bits used to be a 500) and
    on PostgreSQL, with a public dataset and model, and the headers of its operator and of a
    plain member."""
    home = tmp_path_factory.mktemp("fuzz") / "home"
    url = ""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        _reset_postgres(url)
    # Rate limits off: thousands of requests from one client would be 429s, not fuzzing.
    facility = open_facility(
        Settings(home=home, database_url=url, rate_limit_per_token=0, rate_limit_per_address=0)
    )
    with facility.db.session() as db:
        operator = bootstrap_operator(db)
    with facility.db.session() as db:
        member = seed_demo(db)
    assert operator is not None and member is not None
    app = create_app(facility, run_sequencer=False)
    with TestClient(app) as client:
        _publish_artifacts(client, auth(member))
    app.state.sequencer.run_once()  # a signed checkpoint, tiles and proofs to read
    lease = lease_for(facility)  # a leader, as a served facility has: /api/v1/ready is 200
    assert lease.try_acquire()
    try:
        yield app, {"operator": auth(operator), "member": auth(member)}
    finally:
        lease.release()
        facility.close()


def _publish_artifacts(client: TestClient, member: dict[str, str]) -> None:
    """A public dataset (records to read) and a model made from it, so that the artifacts
    routes answer with content, not only 404s."""
    for kind, files in (
        ("dataset", {"train.jsonl": b'{"text": "habari", "source": "radio", "license": "MIT"}\n'}),
        ("model", {"README.md": b"# tiny\n", "model.safetensors": safetensors_bytes()}),
    ):
        made = client.post(
            "/api/v1/artifacts/repos",
            json={"kind": kind, "name": f"fuzz-{kind}", "project": "proj-1",
                  "visibility": "public"},
            headers=member,
        )  # fmt: skip
        assert made.status_code == 201, made.text
        pushed = push(client, member, f"{kind}s/{made.json()['repo_id']}", files)
        assert pushed.status_code == 201, pushed.text


def _assert_seeded(app: FastAPI, principals: dict[str, dict[str, str]]) -> None:
    """The fuzzer meets real rows and two different principals, not an empty facility."""
    with TestClient(app) as client:
        assert client.get("/api/v1/people", headers=principals["operator"]).json()["items"]
        assert client.get("/api/v1/allocations").json()["items"]
        assert len(client.get("/api/v1/artifacts/repos").json()["items"]) >= 2
        member = client.get("/api/v1/me", headers=principals["member"]).json()
        assert "operator" not in member["person"]["roles"] and member["projects"]


def _destructive(operation: Any) -> bool:
    """Revoking tokens, removing roles or deactivating people run last, so that the other
    operations still meet working principals."""
    return operation.method.upper() == "DELETE" or operation.path == "/api/v1/people/{person_id}"


def _strategy(operation: Any) -> Any:
    """Requests drawn from the whole document, and as many again whose integer path ids are
    those of the seeded rows (1, 2, 3): random ids up to 2**53 would find nothing but 404s."""
    ids = [
        param.name
        for param in operation.path_parameters
        if param.definition.get("schema", {}).get("type") == "integer"
    ]
    strategy = operation.as_strategy()
    for seeded in (1, 2, 3) if ids else ():
        strategy |= operation.as_strategy(path_parameters=dict.fromkeys(ids, seeded))
    return strategy


def _described(exc: BaseException) -> str:
    """The failure and, for Hypothesis's flaky-failure groups, each exception inside: the
    group's own message says only that a replay passed, not what failed the first time."""
    parts = [str(exc)[:2000]]
    for inner in getattr(exc, "exceptions", ()):
        parts.append(f"  {type(inner).__name__}: {str(inner)[:2000]}")
    return "\n".join(parts)


@pytest.mark.slow
def test_the_api_answers_every_generated_request_as_documented(
    demo_app: tuple[FastAPI, dict],
) -> None:
    """Every operation, EXAMPLES generated requests, each sent as both principals. All the
    operations run, and every one that failed is reported (not just the first)."""
    app, principals = demo_app
    _assert_seeded(app, principals)
    schema = schemathesis.openapi.from_asgi(OPENAPI_URL, app)
    failures: dict[str, str] = {}
    operations = 0
    for operation in sorted((r.ok() for r in schema.get_all_operations()), key=_destructive):
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same requests every run: a failure reproduces
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation))
        def fuzz(case: Any) -> None:
            for headers in principals.values():
                case.call_and_validate(headers={**(case.headers or {}), **headers}, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # every operation's failure is collected
            failures[operation.label] = _described(exc)
    assert operations > 90
    assert failures == {}, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())
