"""The operator's instruments: /metrics (counted by route template, read only from the
allowed networks, summed over worker processes), /api/v1/ready, request ids on answers,
problem bodies and log lines, and the JSON log lines themselves."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.operations.instruments import JsonFormatter, log_config, serving_setup
from commonlab.operations.leader import lease_for
from tests.helpers import auth, person_with_token, token_for

PROMETHEUS = ("127.0.0.1", 40000)  # an address in the default metrics_networks


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one metric in /metrics, keyed by their sorted labels."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def scraper(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=PROMETHEUS) as client:
        yield client


# Request ids ------------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed_and_put_in_the_problem_body(client: TestClient) -> None:
    answer = client.get("/api/v1/jobs/424242", headers={"X-Request-ID": "edge-7f3a:42"})
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "edge-7f3a:42"
    assert answer.json()["request_id"] == "edge-7f3a:42"
    assert answer.headers["content-length"] == str(len(answer.content))


def test_a_request_without_an_id_is_given_one(client: TestClient) -> None:
    first = client.get("/api/v1/health").headers["x-request-id"]
    second = client.get("/api/v1/health").headers["x-request-id"]
    assert len(first) == 32 and first != second


def _asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    """Send raw header bytes (which no HTTP client would) straight to the ASGI app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("198.51.100.7", 5000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # In a thread of its own: a browser test earlier in this worker (Playwright's sync API)
    # may leave an event loop running on this one, where asyncio.run refuses to start.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, app(scope, receive, send)).result()
    return sent


@pytest.mark.parametrize(
    "hostile",
    [
        b"abc\r\nSet-Cookie: x=1",
        b"abc\nforged log line",
        b"a" * 10_240,
        "caf\u00e9-\u202eid".encode(),
        b"with space",
        b"",
        b'"quoted"',
    ],
    ids=["crlf", "lf", "10kb", "non-ascii", "space", "empty", "quotes"],
)
def test_a_hostile_request_id_is_replaced_not_echoed(app: Any, hostile: bytes) -> None:
    sent = _asgi_get(app, "/api/v1/jobs/424242", [(b"x-request-id", hostile)])
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    ids = [v for k, v in start["headers"] if k == b"x-request-id"]
    assert len(ids) == 1 and ids[0] != hostile and len(ids[0]) == 32
    assert json.loads(body)["request_id"] == ids[0].decode()
    assert hostile not in body or hostile == b""


def test_the_request_id_is_in_every_log_line_of_the_request(app: Any, facility: Facility) -> None:
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    probe = logging.getLogger("commonlab.test.probe")
    probe.setLevel(logging.INFO)
    handler = Lines()
    handler.setFormatter(JsonFormatter())
    for logger in (probe, logging.getLogger("commonlab.http")):
        logger.addHandler(handler)

    @app.get("/api/v1/test/logs")
    def logs() -> dict[str, str]:  # a route in the thread pool, as every sync route runs
        probe.warning("first line\nwith a newline of its own")
        probe.info("second line")
        return {}

    @app.get("/api/v1/test/bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    # Ahead of the app's catch-alls, as if declared with the API's routes.
    app.router.routes[:0] = app.router.routes[-2:]
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            logged = client.get("/api/v1/test/logs", headers={"X-Request-ID": "req-1"})
            broken = client.get("/api/v1/test/bug", headers={"X-Request-ID": "req-2"})
    finally:
        for logger in (probe, logging.getLogger("commonlab.http")):
            logger.removeHandler(handler)
    assert logged.status_code == 200 and logged.headers["x-request-id"] == "req-1"
    # The 500 of an unhandled error carries the id too, in its header and body.
    assert broken.status_code == 500
    assert broken.headers["x-request-id"] == "req-2" == broken.json()["request_id"]
    records = [json.loads(line) for line in lines]
    assert all("\n" not in line for line in lines)
    assert [r["request_id"] for r in records] == ["req-1", "req-1", "req-2"]
    assert records[0]["message"] == "first line\nwith a newline of its own"
    assert records[2]["message"] == "unhandled error" and "RuntimeError" in records[2]["exception"]


def test_a_log_line_outside_a_request_has_no_request_id() -> None:
    record = logging.LogRecord("commonlab.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you" and line["level"] == "info"
    assert "request_id" not in line


def test_log_config_makes_every_line_json(tmp_path: Path) -> None:
    """In a process of its own: dictConfig is process-wide."""
    program = (
        "import logging, logging.config, sys\n"
        "from commonlab.config import Settings\n"
        "from commonlab.operations.instruments import log_config\n"
        f"logging.config.dictConfig(log_config(Settings(home={str(tmp_path)!r})))\n"
        "logging.getLogger('uvicorn.error').info('Started server process')\n"
        "logging.getLogger('commonlab.x').warning('a warning')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "Started server process"),
        ("commonlab.x", "a warning"),
    ]
    assert log_config(Settings(home=tmp_path, log_format="text"))["formatters"]["line"]["()"] == (
        "commonlab.operations.instruments.TextFormatter"
    )


@pytest.mark.parametrize(
    ("log_format", "terminal", "formatter"),
    [
        ("auto", True, "TextFormatter"),  # a newcomer's `up` in a terminal reads as text
        ("auto", False, "JsonFormatter"),  # systemd, docker, a file: one JSON object a line
        ("json", True, "JsonFormatter"),
        ("text", False, "TextFormatter"),
    ],
)
def test_log_lines_are_text_on_a_terminal_and_json_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_format: str, terminal: bool, formatter: str
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    config = log_config(Settings(home=tmp_path, log_format=log_format))
    assert config["formatters"]["line"]["()"] == f"commonlab.operations.instruments.{formatter}"


# /metrics ---------------------------------------------------------------------------------

REQUESTS = "commonlab_http_requests_total"


def test_requests_are_counted_by_route_template_never_raw_path(scraper: TestClient) -> None:
    key = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status", "404"))
    before = samples(scraper, REQUESTS).get(key, 0)
    for job in (987654321, 987654322, 987654323):
        assert scraper.get(f"/api/v1/jobs/{job}").status_code == 404
    assert scraper.get("/no/such/route/555444333").status_code == 404
    assert scraper.request("BREW", "/api/v1/health").status_code == 405
    counted = samples(scraper, REQUESTS)
    assert counted[key] - before == 3
    unmatched = (("method", "GET"), ("route", "<unmatched>"), ("status", "404"))
    assert counted[unmatched] >= 1
    assert counted[(("method", "OTHER"), ("route", "/api/v1/health"), ("status", "405"))] >= 1
    body = scraper.get("/metrics").text
    for raw in ("987654321", "555444333", "BREW"):
        assert raw not in body
    latency = samples(scraper, "commonlab_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/api/v1/jobs/{job_id}"))] >= 3


def test_metrics_are_read_only_from_the_allowed_networks(facility: Facility) -> None:
    app = create_app(facility, run_sequencer=False)
    for client in (("testclient", 50000), ("203.0.113.9", 40000), ("::ffff:10.1.1.1", 1)):
        with TestClient(app, raise_server_exceptions=False, client=client) as http:
            denied = http.get("/metrics")
        assert denied.status_code == 403, client
        assert "COMMONLAB_METRICS_NETWORKS" in denied.json()["detail"]
    settings = facility.settings.model_copy(update={"metrics_networks": "10.0.0.0/8"})
    allowed = create_app(Facility(**{**vars(facility), "settings": settings}), run_sequencer=False)
    with TestClient(allowed, client=("::ffff:10.1.1.1", 1)) as http:
        assert http.get("/metrics").status_code == 200
    with TestClient(allowed, client=PROMETHEUS) as http:
        assert http.get("/metrics").status_code == 403  # loopback was not named this time


def test_an_operators_token_reads_metrics_from_elsewhere(
    facility: Facility, operator: dict[str, str]
) -> None:
    """A scraper behind the proxy, outside metrics_networks: an operator's read-only token
    lets it in; a plain member's token or none does not, and a bad one is a 401."""
    app = create_app(facility, run_sequencer=False)
    with TestClient(app, client=("203.0.113.9", 40000)) as http:
        me = http.get("/api/v1/me", headers=operator).json()["person"]
        scraper = auth(token_for(http, operator, me["id"], scopes=["read"]))
        answer = http.get("/metrics", headers=scraper)
        assert answer.status_code == 200 and "commonlab_" in answer.text
        _, member = person_with_token(http, operator, roles=["researcher"])
        assert http.get("/metrics", headers=member).status_code == 403
        assert http.get("/metrics").status_code == 403
        assert http.get("/metrics", headers=auth("clab_x_y")).status_code == 401


def test_the_facility_figures_come_from_the_database(
    scraper: TestClient, facility: Facility, operator: dict[str, str]
) -> None:
    facility.sequence_now()
    size = scraper.get("/api/v1/record/checkpoint").json()["size"]
    assert size > 0
    assert samples(scraper, "commonlab_facility_figures_ok") == {(): 1.0}
    assert samples(scraper, "commonlab_record_entries") == {(): float(size)}
    assert samples(scraper, "commonlab_record_unsequenced") == {(): 0.0}
    assert samples(scraper, "commonlab_record_checkpoint_age_seconds")[()] >= 0
    assert samples(scraper, "commonlab_jobs_admitted_total") == {(): 0.0}
    assert samples(scraper, "commonlab_controller_adjustments_total") == {
        (("kind", "fairshare"),): 0.0,
        (("kind", "reclaim"),): 0.0,
    }
    assert samples(scraper, "commonlab_leader_held") == {(): 0.0}


def test_workers_figures_are_summed(tmp_path: Path) -> None:
    """Two worker processes count requests into one folder (PROMETHEUS_MULTIPROC_DIR); a
    third, scraped, answers with both: the facility's figures, not one worker's."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    count = (
        "from commonlab.operations import instruments as i\n"
        "i.REQUESTS.labels(method='GET', route='/api/v1/health', status='200').inc(N)\n"
    )
    for n in (2, 5):
        subprocess.run(
            [sys.executable, "-c", count.replace("N", str(n))], env=env, check=True, timeout=60
        )
    scrape = (
        "from prometheus_client import generate_latest\n"
        "from commonlab.operations import instruments as i\n"
        "print(generate_latest(i._process_registry()).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", scrape], env=env, capture_output=True, text=True, check=True
    ).stdout
    values = {
        sample.labels.get("route"): sample.value
        for family in text_string_to_metric_families(out)
        for sample in family.samples
        if sample.name == REQUESTS
    }
    assert values == {"/api/v1/health": 7.0}


def test_serving_setup_gives_the_workers_an_empty_metrics_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings = Settings(home=tmp_path / "home", port=8123)
    serving_setup(settings)
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.parent == settings.home / "run" and folder.name.endswith(".8123")
    (folder / "counter_1.db").write_bytes(b"old run")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")  # the next start, a process of its own
    config = serving_setup(settings)
    assert not any(folder.iterdir())  # counts begin again at each start
    assert config["root"]["handlers"] == ["stderr"]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "operators"))
    serving_setup(settings)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "operators")


# /api/v1/ready ----------------------------------------------------------------------------


def test_ready_when_everything_answers_and_a_leader_holds_the_lease(
    client: TestClient, facility: Facility
) -> None:
    not_yet = client.get("/api/v1/ready")
    assert not_yet.status_code == 503
    assert not_yet.headers["content-type"] == "application/problem+json"
    assert not_yet.json()["checks"]["database"] == "ok"
    assert "leader" in not_yet.json()["detail"]
    lease = lease_for(facility)
    assert lease.try_acquire()
    try:
        ready = client.get("/api/v1/ready")
    finally:
        lease.release()
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "store": "ok", "executor": "ok", "leader": "ok"},
    }


def test_not_ready_when_the_database_is_gone(tmp_path: Path, database: str) -> None:
    """The database really goes: SQLite's file is replaced by a folder; PostgreSQL's
    database is dropped under the facility."""
    url = database
    if database.startswith("postgresql"):
        admin = create_engine(database, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS ready_gone WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE ready_gone"))
        url = database.rsplit("/", 1)[0] + "/ready_gone"
    facility = open_facility(Settings(home=tmp_path / "home", database_url=url))
    lease = lease_for(facility)
    try:
        with TestClient(create_app(facility, run_sequencer=False)) as client:
            if url.startswith("sqlite"):
                assert lease.try_acquire()
                assert client.get("/api/v1/ready").status_code == 200
                facility.db.dispose()
                path = Path(url.removeprefix("sqlite:///"))
                shutil.move(path, tmp_path / "moved.db")
                path.mkdir()
            else:
                assert client.get("/api/v1/ready").json()["checks"]["database"] == "ok"
                with admin.connect() as conn:
                    conn.execute(text("DROP DATABASE ready_gone WITH (FORCE)"))
            gone = client.get("/api/v1/ready")
    finally:
        lease.release()
        facility.close()
        if database.startswith("postgresql"):
            admin.dispose()
    assert gone.status_code == 503
    assert gone.json()["checks"]["database"] == "failed (see the facility's log)"
    assert gone.json()["detail"].startswith("not ready: database: failed")


def test_the_grafana_dashboard_reads_only_metrics_the_facility_exports(
    scraper: TestClient,
) -> None:
    dashboard = Path(__file__).parents[2] / "examples" / "grafana" / "commonlab.json"
    exprs = [
        target["expr"]
        for panel in json.loads(dashboard.read_text())["panels"]
        for target in panel["targets"]
    ]
    used = {name for expr in exprs for name in re.findall(r"commonlab_[a-z_]+", expr)}
    exported = set()
    for family in text_string_to_metric_families(scraper.get("/metrics").text):
        exported |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    assert used and used <= exported, used - exported
    # Job submissions are counted under the route they are made on.
    assert any('route="/api/v1/jobs"' in expr for expr in exprs)
    scraper.post("/api/v1/jobs", json={})
    submitted = samples(scraper, REQUESTS)
    assert any(("route", "/api/v1/jobs") in labels for labels in submitted)


def test_only_small_error_bodies_are_amended(app: Any) -> None:
    """A stored file served as problem+json (any media type an upload declares) is neither
    held in memory nor changed: only error answers of a problem's size get the id."""
    big = {"detail": "x" * 70_000}

    @app.get("/api/v1/test/big-problem")
    def big_problem() -> JSONResponse:
        return JSONResponse(big, status_code=400, media_type="application/problem+json")

    @app.get("/api/v1/test/ok-problem")
    def ok_problem() -> JSONResponse:
        return JSONResponse({"a": 1}, media_type="application/problem+json")

    app.router.routes[:0] = app.router.routes[-2:]
    with TestClient(app) as client:
        large = client.get("/api/v1/test/big-problem")
        fine = client.get("/api/v1/test/ok-problem")
    assert large.status_code == 400 and large.json() == big
    assert fine.json() == {"a": 1}
    assert large.headers["x-request-id"] and fine.headers["x-request-id"]
