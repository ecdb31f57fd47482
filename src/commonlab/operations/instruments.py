"""The operator's instruments on the app: Prometheus metrics at /metrics, readiness at
/api/v1/ready, and a request id on every request, its answer, its log lines and its errors.

Two kinds of figures, so that any worker of any host answers for the whole facility:
- what this process saw (requests, latencies, rate-limit refusals): counters and histograms
  that prometheus_client's multiprocess mode sums over the workers of one `commonlab up`
  (`PROMETHEUS_MULTIPROC_DIR`, set by `serving_setup`); each host is a scrape target.
- the facility's state (jobs per partition and state, admissions, the record's size and
  checkpoint age, ledger holds, controller adjustments, the leader): read from the database
  at scrape time, the same whichever process answers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commonlab.allocation import gauges as ledger_gauges
from commonlab.compute import gauges as compute_gauges
from commonlab.compute.events import ComputeEvent
from commonlab.config import Settings, parse_networks
from commonlab.facility import Facility
from commonlab.http import PROBLEM_JSON, CurrentPrincipal, problem
from commonlab.policy import Action, Resource, decide
from commonlab.record import gauges as record_gauges

__all__ = [
    "METRICS_PATH",
    "RATE_LIMITED",
    "READY_PATH",
    "JsonFormatter",
    "RequestInstruments",
    "TextFormatter",
    "current_request_id",
    "install_instruments",
    "log_config",
    "serving_setup",
]

log = logging.getLogger("commonlab.operations")

METRICS_PATH = "/metrics"
READY_PATH = "/api/v1/ready"
REQUEST_ID_HEADER = "x-request-id"
# A proxy's id is kept when it is plainly an id: printable ASCII without spaces, at most 128
# characters (a UUID, a ULID, nginx's $request_id, `trace-id@host`). Anything else (CR/LF,
# 10 KB, non-ASCII) is replaced by one of ours, never echoed or logged as sent.
_SANE_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "commonlab_request_id", default=None
)

# Decided when prometheus_client was imported (it reads the variable then): whether this
# process writes its figures to the shared folder the workers' scrape sums.
_MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# This process's figures. Module-wide: every app of the process (tests make many) adds to
# them, as the one app of a server would.
PROCESS_METRICS = CollectorRegistry()
REQUESTS = Counter(
    "commonlab_http_requests",
    "HTTP requests answered, by method, route template (never the raw path) and status",
    ["method", "route", "status"],
    registry=PROCESS_METRICS,
)
LATENCY = Histogram(
    "commonlab_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=PROCESS_METRICS,
)
RATE_LIMITED = Counter(
    "commonlab_rate_limited",
    "Requests refused with 429, by the limit they ran into (token or address)",
    ["limit"],
    registry=PROCESS_METRICS,
)


def current_request_id() -> str | None:
    """The id of the request this code runs for, if any."""
    return _request_id.get()


# Request ids, metrics of requests ----------------------------------------------------------


class RequestInstruments:
    """ASGI middleware, outermost: gives each request its id (the proxy's, when sane),
    answers with it in `X-Request-ID` and in every problem+json body, makes it the id of
    every log line written for the request, and counts the request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = _request_id.set(request_id)
        started_at = time.perf_counter()
        started = False  # whether the answer has begun
        status = 500
        held: Message | None = None  # a problem+json start, held until its body is amended
        body = b""

        async def instrumented_send(message: Message) -> None:
            nonlocal status, started, held, body
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
                if status >= 400 and _is_problem(headers):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                body += message.get("body", b"")
                if len(body) > _MAX_PROBLEM_BYTES:  # not one of ours: passed on as it is
                    start, held = held, None
                    await send(start)
                    await send({**message, "body": body})
                    return
                if message.get("more_body", False):
                    return
                start, held = held, None
                amended = _with_request_id(body, request_id)
                if amended is not body:  # (a HEAD's empty body keeps its length)
                    headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                    headers.append((b"content-length", str(len(amended)).encode()))
                    start = {**start, "headers": headers}
                await send(start)
                message = {"type": "http.response.body", "body": amended}
            await send(message)

        try:
            await self.app(scope, receive, instrumented_send)
        except Exception:
            # Starlette's outermost layer turns this into the 500 and logs it, outside this
            # middleware: answer here, so the 500 carries the id too, and keep the id set
            # (the request's task ends with it) for the lines logged about it out there.
            if not started:
                internal = problem(
                    500,
                    "Internal error",  # as http's handler of last resort words it
                    "an unexpected error occurred; it has been logged",
                    slug="internal",
                )
                await internal(scope, receive, instrumented_send)
            self._count(scope, 500, started_at)
            raise
        _request_id.reset(token)
        self._count(scope, status, started_at)

    @staticmethod
    def _count(scope: Scope, status: int, started_at: float) -> None:
        method = scope.get("method", "")
        method = method if method in _METHODS else "OTHER"
        route = route_template(scope)
        REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        LATENCY.labels(method=method, route=route).observe(time.perf_counter() - started_at)


def _request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if _SANE_ID.fullmatch(value):
                return value.decode("ascii")
            break  # only the first one counts
    return uuid.uuid4().hex


# Problem bodies are a few hundred bytes: a larger one is passed on unread, not held.
_MAX_PROBLEM_BYTES = 64 << 10


def _is_problem(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and v.startswith(PROBLEM_JSON.encode()) for k, v in headers)


def _with_request_id(body: bytes, request_id: str) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict):
        return body
    document["request_id"] = request_id
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def route_template(scope: Scope) -> str:
    """The route that answered, as declared (`/api/v1/jobs/{job_id}`): a raw path would make
    a series per id (and put ids in the figures). Static mounts are `<mount>/{path}`."""
    route = scope.get("route")
    if route is None:
        return "<unmatched>"
    path = getattr(route, "path", None) or "<unnamed>"
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


# /metrics --------------------------------------------------------------------------------


class FacilityFigures:
    """A Prometheus collector of the facility's state, read from the database when scraped
    (at most once per `ttl` seconds: several Prometheus servers cost one set of queries)."""

    def __init__(self, facility: Facility, *, leader: Callable[[], bool] | None, ttl: float = 5.0):
        self.facility = facility
        self.leader = leader
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -1e9
        self._figures: list[Metric] = []

    def describe(self) -> list[Metric]:
        return []  # computed per scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._figures = self._read()
                self._at = time.monotonic()
            yield from self._figures

    def _read(self) -> list[Metric]:
        ok = GaugeMetricFamily(
            "commonlab_facility_figures_ok",
            "1 when the facility's figures below were read from the database at this scrape",
        )
        try:
            figures = self._from_database()
        except Exception:
            log.exception("metrics: cannot read the facility's figures")
            ok.add_metric([], 0)
            return [ok]
        ok.add_metric([], 1)
        return [ok, *figures]

    def _from_database(self) -> list[Metric]:
        with self.facility.db.session() as db:
            live = compute_gauges.live_jobs(db)
            admitted = compute_gauges.admitted_total(db)
            record = record_gauges.record_figures(db)
            adjustments = record_gauges.count_by_type(db, _ADJUSTMENTS)
            held = ledger_gauges.held_hours(db)
        jobs = GaugeMetricFamily(
            "commonlab_jobs",
            "Jobs not yet ended, by partition and state; the queue is admitted + queued",
            labels=["partition", "state"],
        )
        for partition, state, count in live:
            jobs.add_metric([partition, state], count)
        admissions = CounterMetricFamily(
            "commonlab_jobs_admitted", "Jobs admitted since the facility began"
        )
        admissions.add_metric([], admitted)
        size = GaugeMetricFamily("commonlab_record_entries", "Entries in the latest signed tree")
        size.add_metric([], record.size)
        waiting = GaugeMetricFamily(
            "commonlab_record_unsequenced", "Entries appended, waiting for the sequencer"
        )
        waiting.add_metric([], record.unsequenced)
        age = GaugeMetricFamily(
            "commonlab_record_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed (absent before the first)",
        )
        if record.last_checkpoint_at is not None:
            seconds = (datetime.now(UTC) - record.last_checkpoint_at).total_seconds()
            age.add_metric([], max(0.0, seconds))
        holds = GaugeMetricFamily(
            "commonlab_ledger_held_hours",
            "Accelerator-hours held by open reservations, by accelerator class",
            labels=["accelerator"],
        )
        for accelerator, hours in sorted(held.items()):
            holds.add_metric([accelerator], float(hours))
        steps = CounterMetricFamily(
            "commonlab_controller_adjustments",
            "Steps the share controller took: fair-share weights adjusted, shares reclaimed",
            labels=["kind"],
        )
        for event, count in adjustments.items():
            steps.add_metric([_ADJUSTMENTS[event]], count)
        figures: list[Metric] = [jobs, admissions, size, waiting, age, holds, steps]
        if self.leader is not None:
            leader = GaugeMetricFamily(
                "commonlab_leader_held", "1 when some process holds the leader lease"
            )
            leader.add_metric([], 1 if self.leader() else 0)
            figures.append(leader)
        return figures


_ADJUSTMENTS = {
    ComputeEvent.FairshareAdjusted.value: "fairshare",
    ComputeEvent.SharesReclaimed.value: "reclaim",
}


def _metrics_route(app: FastAPI, facility: Facility) -> None:
    allowed = parse_networks(facility.settings.metrics_networks)
    figures = CollectorRegistry()
    figures.register(FacilityFigures(facility, leader=_leader_probe(facility)))

    @app.get(METRICS_PATH, include_in_schema=False)
    def metrics(request: Request, principal: CurrentPrincipal) -> Response:
        # From the scrapers' networks, or (through a proxy) with an operator's read token.
        near = _allowed(request.client.host if request.client else "", allowed)
        if not near and not decide(principal, Action.MetricsRead, Resource.fleet()).allowed:
            return problem(
                403,
                "Access denied",
                "/metrics is read from the networks in COMMONLAB_METRICS_NETWORKS (your "
                "Prometheus servers'), or with an operator's token; ask the facility's "
                "operators",
                slug="metrics-denied",
            )
        body = generate_latest(_process_registry()) + generate_latest(figures)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def _process_registry() -> CollectorRegistry:
    if not _MULTIPROCESS:
        return PROCESS_METRICS
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)
    return registry


def _allowed(host: str, networks: tuple[Any, ...]) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


# /api/v1/ready ---------------------------------------------------------------------------


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str] = Field(description="each check and what it found: all 'ok' here")


# A check that does not answer within this is reported not ready (a hung NFS, a blackholed
# database host); it is not started again while it hangs.
CHECK_SECONDS = 3.0


class _Readiness:
    def __init__(self, app: FastAPI, facility: Facility) -> None:
        self.checks: dict[str, Callable[[], str]] = {
            "database": lambda: _database(facility),
            "store": lambda: _writable(facility.settings.home / "objects"),
            "executor": lambda: _executor(app, facility.settings),
            "leader": _leader_check(facility),
        }
        self._running: set[str] = set()

    async def run(self) -> dict[str, str]:
        names = list(self.checks)
        found = await asyncio.gather(*(self._one(name) for name in names))
        return dict(zip(names, found, strict=True))

    async def _one(self, name: str) -> str:
        if name in self._running:
            return f"the last check has not answered after {CHECK_SECONDS:g} s"
        self._running.add(name)
        future = asyncio.get_running_loop().run_in_executor(None, self._guarded, name)
        try:
            return await asyncio.wait_for(asyncio.shield(future), CHECK_SECONDS)
        except TimeoutError:
            return f"no answer within {CHECK_SECONDS:g} s"

    def _guarded(self, name: str) -> str:
        try:
            return self.checks[name]() or "ok"
        except Exception as exc:
            log.warning("ready: %s check failed: %s", name, exc)
            return "failed (see the facility's log)"
        finally:
            self._running.discard(name)


def _database(facility: Facility) -> str:
    with facility.db.session() as db:
        db.execute(text("SELECT 1"))
    return ""


def _writable(folder: Path) -> str:
    if not folder.is_dir():
        return f"{folder.name}/ is missing"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder.name}/ is not writable"
    return ""


def _executor(app: FastAPI, settings: Settings) -> str:
    """Slurm: its controller and database daemon answer (`scontrol ping`, sacctmgr); the
    local executor: the jobs' folder is writable."""
    executor = app.state.jobs.executor
    ping = getattr(getattr(executor, "cli", None), "ping", None)
    if ping is not None:
        try:
            ping()
        except Exception as exc:
            return str(getattr(exc, "message", exc))[:200]
        return ""
    return _writable(settings.jobs_path)


def _leader_probe(facility: Facility) -> Callable[[], bool] | None:
    try:
        from commonlab.operations.leader import leader_status
    except ImportError:  # the lease arrives with the fleet's work (issue 20)
        return None
    return lambda: leader_status(facility).held


def _leader_check(facility: Facility) -> Callable[[], str]:
    probe = _leader_probe(facility)

    def check() -> str:
        if probe is None or probe():
            return ""
        return "no process holds the leader lease: nothing sequences the record or runs jobs"

    return check


def _ready_route(app: FastAPI, facility: Facility) -> None:
    readiness = _Readiness(app, facility)

    @app.get(
        READY_PATH,
        tags=["meta"],
        summary="Readiness: database, store, executor and a sequencer leader answer",
        response_model=ReadyOut,
        responses={
            503: {
                "description": "Not ready: `checks` says what is not",
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        },
    )
    async def ready() -> ReadyOut | JSONResponse:
        checks = await readiness.run()
        failing = {name: found for name, found in checks.items() if found != "ok"}
        if failing:
            what = "; ".join(f"{name}: {found}" for name, found in failing.items())
            return problem(503, "Not ready", f"not ready: {what}", slug="not-ready", checks=checks)
        return ReadyOut(status="ready", checks=checks)


def install_instruments(app: FastAPI, facility: Facility) -> None:
    """Add the metrics, readiness and request-id middleware and routes to the app."""
    _metrics_route(app, facility)
    _ready_route(app, facility)
    app.add_middleware(RequestInstruments)


# Logs ------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's id when the
    line is written for a request, and the exception, if any. A message's own newlines are
    escaped, so a line is always one record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := _request_id.get():
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger [request id] message`, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = _request_id.get()
        record.request = f" [{request_id}]" if request_id else ""
        return super().format(record)


def log_config(settings: Settings) -> dict[str, Any]:
    """The logging configuration of a server process (uvicorn applies it in each worker):
    every line, uvicorn's own included, through one formatter on stderr."""
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    formatter = JsonFormatter if as_json else TextFormatter
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {"uvicorn": through_root, "uvicorn.error": through_root},
    }


def serving_setup(settings: Settings) -> dict[str, Any]:
    """What `commonlab up` prepares before it starts its server processes: a fresh folder
    where its workers write their figures (PROMETHEUS_MULTIPROC_DIR, inherited by the
    workers; one per host and port, emptied at each start so counts begin again), unless the
    operator named one. Returns uvicorn's logging configuration (`log_config`)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = settings.home / "run" / f"metrics.{socket.gethostname()}.{settings.port}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700, parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return log_config(settings)
