"""The load test's smoke run (bench/load_bench.py): a few seconds of every kind of its traffic
against a real `commonlab up`, on SQLite and PostgreSQL, so the bench cannot rot. Its
figures are not asserted; that the facility answered every request without a 5xx, and that
the bench kept to its bound, are."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.helpers import bench_script

# Every route the mix sends: the first operations of each client go through all of them.
ROUTES = {
    "GET /api/datasets/{repo}",
    "GET /api/v1/artifacts/repos",
    "GET /api/v1/jobs",
    "GET /api/v1/motions",
    "GET /api/v1/record/entries",
    "GET /log/checkpoint",
    "GET /log/tile/0/{n}",
    "POST /api/v1/artifacts/{repo}/uploads",
    "PUT /api/v1/artifacts/uploads/{id}",
    "POST /api/v1/artifacts/{repo}/versions",
    "POST /api/v1/jobs",
    "POST /api/v1/motions/{id}/votes",
}
MAX_REQUESTS = 120
CLIENTS = 2


def _bench() -> ModuleType:
    return bench_script("load_bench")


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_short_run_sends_every_kind_of_traffic_without_a_5xx(database, request, capsys):
    bench = _bench()
    db = request.getfixturevalue("postgres_url") if database == "postgres" else ""
    run = bench.main(
        ["--db", db, "--rate", "closed", "--clients", str(CLIENTS), "--duration", "60",
         "--max-requests", str(MAX_REQUESTS), "--progress", "60", "--baseline", "0.5"]
    )  # fmt: skip
    out = capsys.readouterr().out

    findings = [finding for stage in run.stages for finding in stage.findings]
    assert findings == [], out
    assert "no 5xx and no connection errors" in out
    routes = {route for route, _, _ in run.samples}
    assert routes >= ROUTES, sorted(ROUTES - routes)
    # Every write the bench seeded for succeeds: its people, project and motion are right.
    refused = [(route, status) for route, status, _ in run.samples if status >= 400]
    assert refused == [], out
    # Bounded: a client stops at its share, past it by at most one upload's last requests.
    assert len(run.samples) <= MAX_REQUESTS + 2 * CLIENTS
    assert "per route" in out and "POST /api/v1/jobs" in out
    # The baseline beside it: the HTTP stack alone, outside the bound.
    assert {status for _, status, _ in run.baseline.samples} == {200}
