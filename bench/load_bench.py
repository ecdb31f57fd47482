"""A load test: mixed traffic against a real facility server (issue 20). Prints figures;
asserts nothing.

    python bench/load_bench.py [--db URL] [--duration S] [--max-requests N] [--clients C]
                               [--rate step|closed|R] [--stage S] [--start-rate R] [--step F]
                               [--p99-limit MS] [--baseline S] [--workers N]

It starts `commonlab up` in a process of its own on a free port, on loopback (SQLite in a
scratch home by default; with `--db`, a scratch database made on that PostgreSQL server and
dropped afterwards), and seeds through the API what the traffic needs: a council of ten
member states with a delegate each and a motion open for votes, a project with an
allocation, and a dataset repository per client. C client processes then send a mix of
requests (MIX below): portal pages, `/api/v1` lists, the record's checkpoint and tiles, Hub
reads, job submissions (the jobs really run, on the local executor), artifact uploads
(start, chunk, commit: three requests) and votes.

Before the mix, the same clients send `GET /api/v1/health` in a closed loop for
`--baseline` seconds (default 10, outside `--max-requests`): the HTTP stack's ceiling on this
machine at that moment, the baseline beside the mix's figures.

`--rate step` (the default) looks for the highest rate the facility holds: it offers
`--start-rate` operations a second for `--stage` seconds, and multiplies the rate by
`--step` while a stage holds (no 5xx, no connection error, the clients kept at least 95% of
the offered rate, and p99 over all routes within `--p99-limit`, default 1 s); after the
first stage that does not hold it bisects between the last two rates. The search uses at
most half of `--duration`; the rest is spent at the highest rate held, and that hold's
figures are the result. `--rate R` offers R operations a second for the whole duration;
`--rate closed` has each client send its next request as soon as the last one was answered,
and reports throughput.

Rates count operations (an upload is three requests); p50/p99 are per route, measured from
the request's send to its answer. Every 5xx is a finding: its route and body are printed,
with the server's log; a 4xx (this traffic is well-formed) is printed as a refusal. The run
ends with the states of the jobs it submitted: whether the executor kept up. Everything is
bounded: `--duration` (default ten minutes) and `--max-requests`. The clients share the
machine with the server: on a 2-core machine they take some of its CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.compute.helpers import award_project  # noqa: E402
from tests.helpers import auth, found_council  # noqa: E402

from commonlab.record.checkpoint import generate_witness  # noqa: E402
from commonlab.record.tiles import tile_path  # noqa: E402

# What the traffic is made of: operation → weight (out of 100). Reads are most of what a
# facility serves; the writes are the ones that append to the record.
MIX = {
    "portal": 20,  # a public portal page
    "api_list": 20,  # an /api/v1 list, signed in
    "checkpoint": 10,  # the record's signed checkpoint
    "tile": 10,  # the record's newest level-0 tile
    "hub": 5,  # a dataset through the Hub-compatible API
    "submit_job": 15,
    "upload": 5,  # start, chunk and commit a small file: three requests
    "vote": 15,
}

# Ten member states with equal shares: ten delegates, so up to ten clients each vote for a
# state of their own (two clients changing one state's vote at once would race to a 409).
STATES = [
    ("IT", "Italy"), ("FR", "France"), ("DE", "Germany"), ("ES", "Spain"), ("SE", "Sweden"),
    ("NL", "Netherlands"), ("BE", "Belgium"), ("AT", "Austria"), ("PT", "Portugal"),
    ("FI", "Finland"),
]  # fmt: skip

UPLOAD_BYTES = 4096
HELD_SHARE = 0.95  # a stage holds when the clients kept this share of the offered rate

# The server's own rate limits would answer this traffic with 429: the bench measures the
# facility, not its limiter, so the server it starts runs with them off (0: off).
LIMITS_OFF = {"COMMONLAB_RATE_LIMIT_PER_TOKEN": "0", "COMMONLAB_RATE_LIMIT_PER_ADDRESS": "0"}


# The facility under test ------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What the seeding made, handed to every client process."""

    url: str
    operator: dict[str, str]
    pi: dict[str, str]
    member: dict[str, str]
    delegates: list[dict[str, str]]
    project: str
    motion_id: int
    # kinds/namespace/name, as the artifacts API addresses them: one per client, as each
    # researcher publishes their own (concurrent commits to one repository are refused with
    # a 409 when they keep overtaking each other); the reads read the first.
    repos: list[str]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _cli() -> list[str]:
    beside = Path(sys.executable).parent / "commonlab"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "commonlab.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def facility_server(home: Path, db_url: str, workers: int | None) -> Iterator[tuple[Server, str]]:
    """`commonlab up` on a free loopback port, in a process group of its own; the server and
    its first operator's token (saved by `up` as the CLI login, here in a scratch file)."""
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    cli_config = home / "cli.toml"
    env = {
        **os.environ,
        "COMMONLAB_HOME": str(home),
        "COMMONLAB_DATABASE_URL": db_url,
        "COMMONLAB_CLI_CONFIG": str(cli_config),
        "TERM": "dumb",
        **LIMITS_OFF,
    }
    command = [*_cli(), "up", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_until_up(server, cli_config)
        yield server, str(tomllib.loads(cli_config.read_text())["token"])
    finally:
        _stop(process)


def _wait_until_up(server: Server, cli_config: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"commonlab up exited ({server.process.returncode}):\n{_tail(server.log)}"
            )
        try:
            up = httpx.get(f"{server.url}/api/v1/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            up = False
        if up and cli_config.exists():
            return
        time.sleep(0.2)
    raise SystemExit(f"commonlab up did not answer within {timeout:.0f} s:\n{_tail(server.log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's group (its workers too), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """With a PostgreSQL URL: a new empty database on that server, dropped afterwards (the
    facility must be new, so that `up` creates its first operator). Without: SQLite."""
    if not url:
        yield ""
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"commonlab_load_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(url: str, operator_token: str, *, clients: int) -> Setup:
    """Through the API, as an operator and the people it registers would."""
    operator = auth(operator_token)
    with httpx.Client(base_url=url, timeout=60) as api:
        share = str(100 // len(STATES))
        founders = [{"code": code, "name": name, "contribution": share} for code, name in STATES]
        delegates = [auth(token) for token in found_council(api, operator, founders).values()]
        project = award_project(api, operator, budget={"cpu": "20000"}, found=False)
        motion = api.post(
            "/api/v1/motions",
            json={
                "kind": "register_witness",
                "title": "Register the load test's witness",
                "payload": {
                    "name": "load.witness",
                    "verifier_key": generate_witness("load.witness")[1],
                },
                "closes_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            },
            headers=delegates[0],
        )
        assert motion.status_code == 201, motion.text
        repos = []
        for index in range(clients):
            repo = api.post(
                "/api/v1/artifacts/repos",
                json={"kind": "dataset", "name": f"load-test-{index}", "project": project.name},
                headers=project.pi_auth,
            )
            assert repo.status_code == 201, repo.text
            repos.append(f"datasets/{repo.json()['repo_id']}")
        setup = Setup(
            url=url,
            operator=operator,
            pi=project.pi_auth,
            member=project.member_auth,
            delegates=delegates,
            project=project.name,
            motion_id=int(motion.json()["id"]),
            repos=repos,
        )
        # One version, so that the Hub and portal reads of the repository find something;
        # then every other operation once, so that the first step is not the server's
        # first use of each route (votes are left to the clients: each owns a state's).
        first = Traffic(setup, index=0, http=api)
        for operation in ["upload", *(name for name in MIX if name != "vote")]:
            getattr(first, operation)()
        assert all(200 <= status < 400 for _, status, _ in first.samples), first.samples
    return setup


# The traffic ------------------------------------------------------------------------------


class Traffic:
    """One client's operations. Each records (route, status, seconds) per request it makes;
    a 5xx or a connection error is also kept as a finding, a 4xx as a refusal, with its body
    (this traffic is all well-formed: a refusal is a surprise too)."""

    def __init__(self, setup: Setup, *, index: int, http: httpx.Client) -> None:
        self.setup, self.index, self.http = setup, index, http
        self.random = random.Random(index)
        self.samples: list[tuple[str, int, float]] = []
        self.findings: list[tuple[str, int, str]] = []
        self.refusals: list[tuple[str, int, str]] = []
        self.record_size = 0
        self.uploads = 0
        self.delegate = setup.delegates[index % len(setup.delegates)]
        self.repos = setup.repos
        self.last_choice = "no"
        self.operations = 0

    def _call(self, route: str, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.samples.append((route, 0, time.perf_counter() - started))
            self.findings.append((route, 0, f"{type(exc).__name__}: {exc}"))
            return None
        self.samples.append((route, answer.status_code, time.perf_counter() - started))
        if answer.status_code >= 500:
            self.findings.append((route, answer.status_code, answer.text[:500]))
        elif answer.status_code >= 400:
            self.refusals.append((route, answer.status_code, answer.text[:300]))
        return answer

    def health(self) -> None:
        self._call("GET /api/v1/health", "GET", "/api/v1/health")

    def portal(self) -> None:
        route, path = self.random.choice(
            [
                ("GET /", "/"),
                ("GET /council", "/council"),
                ("GET /motions/{id}", f"/motions/{self.setup.motion_id}"),
                ("GET /artifacts?kind=dataset", "/artifacts?kind=dataset"),
                ("GET /record", "/record"),
                (
                    "GET /artifacts/{repo}/versions/1",
                    f"/artifacts/{self.repos[0]}/versions/1",
                ),
            ]
        )
        self._call(route, "GET", path)

    def api_list(self) -> None:
        route, path, params = self.random.choice(
            [
                ("GET /api/v1/jobs", "/api/v1/jobs", {"project": self.setup.project}),
                ("GET /api/v1/motions", "/api/v1/motions", {}),
                ("GET /api/v1/artifacts/repos", "/api/v1/artifacts/repos", {}),
                ("GET /api/v1/record/entries", "/api/v1/record/entries", {}),
            ]
        )
        self._call(route, "GET", path, params={**params, "limit": 20}, headers=self.setup.pi)

    def checkpoint(self) -> None:
        answer = self._call("GET /log/checkpoint", "GET", "/log/checkpoint")
        if answer is not None and answer.status_code == 200:
            self.record_size = int(answer.text.splitlines()[1])

    def tile(self) -> None:
        if self.record_size == 0:
            self.checkpoint()
        full, partial = divmod(self.record_size, 256)
        path = tile_path(0, full, partial) if partial else tile_path(0, full - 1)
        self._call("GET /log/tile/0/{n}", "GET", f"/log/{path}")

    def hub(self) -> None:
        self._call("GET /api/datasets/{repo}", "GET", f"/api/{self.repos[0]}")

    def submit_job(self) -> None:
        body = {
            "name": "load",
            "project": self.setup.project,
            "command": "true",
            "accelerator": "cpu",
            "time_limit_minutes": 1,
        }
        self._call(
            "POST /api/v1/jobs", "POST", "/api/v1/jobs", json=body, headers=self.setup.member
        )

    def upload(self) -> None:
        repo, headers = self.repos[self.index % len(self.repos)], self.setup.pi
        data = os.urandom(UPLOAD_BYTES)
        digest = blake3.blake3(data).hexdigest()
        declared = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "blake3": digest}
        started = self._call(
            "POST /api/v1/artifacts/{repo}/uploads", "POST", f"/api/v1/artifacts/{repo}/uploads",
            json=declared, headers=headers,
        )  # fmt: skip
        if started is None or started.status_code != 201:
            return
        if started.json()["state"] == "open":
            sent = self._call(
                "PUT /api/v1/artifacts/uploads/{id}", "PUT",
                f"/api/v1/artifacts/uploads/{started.json()['id']}", params={"offset": 0},
                content=data, headers={**headers, "content-type": "application/octet-stream"},
            )  # fmt: skip
            if sent is None or sent.status_code != 200:
                return
        self.uploads += 1
        files = [{"path": f"part-{self.index}-{self.uploads}.bin", "blake3": digest}]
        self._call(
            "POST /api/v1/artifacts/{repo}/versions", "POST", f"/api/v1/artifacts/{repo}/versions",
            json={"files": files, "message": "load test"}, headers=headers,
        )  # fmt: skip

    def vote(self) -> None:
        # Each vote changes this state's vote: the same choice twice would be a 409.
        self.last_choice = "yes" if self.last_choice == "no" else "no"
        self._call(
            "POST /api/v1/motions/{id}/votes", "POST",
            f"/api/v1/motions/{self.setup.motion_id}/votes",
            json={"choice": self.last_choice}, headers=self.delegate,
        )  # fmt: skip

    def one(self) -> None:
        """One operation: each of MIX's once first (so even a short run covers every route),
        then drawn by their weights."""
        if self.operations < len(MIX):
            name = list(MIX)[self.operations]
        else:
            name = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        self.operations += 1
        getattr(self, name)()

    def take(self) -> tuple[list[tuple[str, int, float]], list[tuple[str, int, str]]]:
        taken = self.samples, self.findings, self.refusals
        self.samples, self.findings, self.refusals = [], [], []
        return taken


def _client_process(setup: Setup, index: int, clients: int, budget: int, commands, results):
    """One client: for each stage it is told (rate, seconds), with rate None for closed
    loop, it sends operations on its turns of the schedule and reports every second."""
    # A connection idle for uvicorn's keep-alive timeout (5 s, httpx's expiry too) may be
    # closed by the server as the client reuses it: a slow client reconnects first.
    limits = httpx.Limits(keepalive_expiry=2.0)
    with httpx.Client(base_url=setup.url, timeout=60, limits=limits) as http:
        traffic = Traffic(setup, index=index, http=http)
        sent = 0  # requests, against this client's share of --max-requests
        while (command := commands.get()) is not None:
            rate, seconds, only = command
            began = time.monotonic()
            end = began + seconds
            interval = clients / rate if rate else 0.0
            next_at = began + (index / rate if rate else 0.0)  # the clients take turns
            reported, operations = began, 0
            while sent < budget and (now := time.monotonic()) < end:
                if next_at > now:
                    time.sleep(min(next_at, end) - now)
                    continue
                before = len(traffic.samples)
                if only:  # the baseline: outside the mix and its --max-requests
                    getattr(traffic, only)()
                else:
                    traffic.one()
                    sent += len(traffic.samples) - before
                operations += 1
                next_at += interval  # behind schedule, the next one goes at once
                if time.monotonic() - reported >= 1.0:
                    results.put(("samples", index, *traffic.take()))
                    reported = time.monotonic()
            results.put(("samples", index, *traffic.take()))
            # The turns this client had before the stage ended: kept on time, it took them all.
            turns = math.ceil((end - began - index / rate) / interval) if rate else operations
            took = time.monotonic() - began
            results.put(("done", index, operations, max(turns, 0), took, sent >= budget))


def job_states(setup: Setup) -> Counter[str]:
    """How far the jobs the traffic submitted got: their states, read once it stopped."""
    states: Counter[str] = Counter()
    after = None
    with httpx.Client(base_url=setup.url, timeout=60, headers=setup.pi) as api:
        while True:
            params = {"project": setup.project, "limit": 500}
            page = api.get("/api/v1/jobs", params=params | ({"after": after} if after else {}))
            states.update(job["state"] for job in page.json()["items"])
            if (after := page.json()["next"]) is None:
                return states


# Stages: the clients at one offered rate ----------------------------------------------------


@dataclass
class Stage:
    """What the clients did at one offered rate (None: closed loop)."""

    label: str
    rate: float | None
    seconds: float = 0.0
    operations: int = 0
    turns: int = 0  # the operations the schedule offered
    exhausted: bool = False  # the clients ran out of --max-requests during it
    samples: list[tuple[str, int, float]] = field(default_factory=list)
    findings: list[tuple[str, int, str]] = field(default_factory=list)
    refusals: list[tuple[str, int, str]] = field(default_factory=list)
    p99_limit_ms: float = math.inf

    @property
    def p99_ms(self) -> float:
        return _percentile([seconds for _, _, seconds in self.samples], 0.99) * 1000

    @property
    def achieved(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def held(self) -> bool:
        return not self.missed

    @property
    def missed(self) -> str:
        """Why the stage did not hold, or "": it holds with no 5xx, no connection error, the
        offered rate kept and p99 within the limit (closed loop: no 5xx or connection error)."""
        if self.findings:
            return f"{len(self.findings)} 5xx or connection errors"
        if self.rate is None or self.exhausted:
            return ""
        if self.operations < HELD_SHARE * self.turns:
            return f"kept {self.operations / self.turns:.1%} of the offered rate"
        if self.p99_ms > self.p99_limit_ms:
            return f"p99 over {self.p99_limit_ms:g} ms"
        return ""

    def classes(self) -> Counter[str]:
        return Counter(_class(status) for _, status, _ in self.samples)


def _class(status: int) -> str:
    return f"{status // 100}xx" if status else "error"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


class Clients:
    """The client processes (processes, not threads: they must not share one interpreter
    lock), told one stage at a time what rate to offer."""

    def __init__(
        self, setup: Setup, *, clients: int, max_requests: int, p99_limit_ms: float, began: float
    ) -> None:
        context = multiprocessing.get_context("fork")
        self.results = context.Queue()
        self.commands = [context.Queue() for _ in range(clients)]
        budget = math.ceil(max_requests / clients)
        self.processes = [
            context.Process(
                target=_client_process,
                args=(setup, index, clients, budget, commands, self.results),
                daemon=True,
            )
            for index, commands in enumerate(self.commands)
        ]
        for process in self.processes:
            process.start()
        self.began = began
        self.p99_limit_ms = p99_limit_ms
        self.exhausted = False

    def run(
        self, label: str, rate: float | None, seconds: float, *, every: float, only: str = ""
    ) -> Stage:
        """A stage: the mix (or `only` that operation) at `rate` (None: closed loop)."""
        for commands in self.commands:
            commands.put((rate, seconds, only))
        stage = Stage(label, rate, p99_limit_ms=self.p99_limit_ms)
        done, exhausted, shown = 0, 0, time.monotonic()
        while done < len(self.commands):
            try:
                message = self.results.get(timeout=1)
            except queue.Empty:
                message = None
            if message is not None and message[0] == "samples":
                stage.samples += message[2]
                stage.findings += message[3]
                stage.refusals += message[4]
            elif message is not None:
                _, _, operations, turns, took, ran_out = message
                done += 1
                stage.operations += operations
                stage.turns += turns
                stage.seconds = max(stage.seconds, took)
                exhausted += ran_out
            if time.monotonic() - shown >= every:
                print(self._progress(stage), flush=True)
                shown = time.monotonic()
        stage.exhausted = self.exhausted = exhausted == len(self.commands)
        return stage

    def _progress(self, stage: Stage) -> str:
        classes = stage.classes()
        offered = f"{stage.rate:.1f} ops/s" if stage.rate else "closed loop"
        return (
            f"  [{time.monotonic() - self.began:5.0f} s] {stage.label}, {offered}: "
            f"{len(stage.samples):,} requests, "
            + " ".join(f"{name} {classes[name]:,}" for name in ("2xx", "4xx", "5xx", "error"))
        )

    def close(self) -> None:
        for commands in self.commands:
            commands.put(None)
        for process in self.processes:
            process.join(timeout=30)


def find_and_hold(
    clients: Clients, *, duration: float, stage: float, start: float, step: float, every: float
) -> tuple[list[Stage], Stage | None]:
    """Step the offered rate up while it holds (down, if the first does not), bisect between
    the highest that held and the lowest that did not, within half the duration; then hold
    the highest rate that held for the rest of it."""
    stages: list[Stage] = []
    search_ends = clients.began + duration / 2
    rate, good, bad = round(start, 1), None, None
    while not clients.exhausted and time.monotonic() + stage <= search_ends:
        result = clients.run(f"step {len(stages) + 1}", rate, stage, every=every)
        stages.append(result)
        print(_stage_line(result), flush=True)
        if result.held:
            good = rate
        else:
            bad = rate
        if bad is None:
            rate = round(rate * step, 1)
        elif good is None:
            rate = round(rate / step, 1)
            if rate < 1:
                break
        elif bad / good <= 1.1:
            break
        else:
            rate = round(math.sqrt(good * bad), 1)
    left = clients.began + duration - time.monotonic()
    if good is None or clients.exhausted or left < 1:
        return stages, None
    return stages, clients.run("hold", good, left, every=every)


# The report -------------------------------------------------------------------------------


def _stage_line(stage: Stage) -> str:
    latencies = [seconds for _, _, seconds in stage.samples]
    p50, p99 = (_percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    offered = f"{stage.rate:7.1f}" if stage.rate else " closed"
    verdict = "held" if stage.held else f"NOT HELD: {stage.missed}"
    # Achieved counts the stage's wall time, stragglers' last answers included; a step is
    # judged on the share of its scheduled operations the clients sent.
    sent = f"sent {stage.operations / stage.turns:6.1%}  " if stage.rate and stage.turns else ""
    classes = stage.classes()
    return (
        f"  {stage.label:<8} offered {offered} ops/s  {sent}achieved {stage.achieved:6.1f} ops/s "
        f"{len(stage.samples) / stage.seconds if stage.seconds else 0:6.1f} req/s  "
        f"p50 {p50:6.1f} ms  p99 {p99:7.1f} ms  "
        f"5xx {classes['5xx']} errors {classes['error']}  {verdict}"
    )


def report(stages: list[Stage], result: Stage, log: Path) -> None:
    print(f"\nper route, {result.label} ({result.seconds:.0f} s):")
    by_route: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for route, status, seconds in result.samples:
        by_route[route].append((status, seconds))
    print(f"  {'route':<42} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for route in sorted(by_route):
        rows = by_route[route]
        latencies = [seconds for _, seconds in rows]
        statuses = Counter(status for status, _ in rows)
        shown = " ".join(f"{code or 'error'}×{n:,}" for code, n in sorted(statuses.items()))
        print(
            f"  {route:<42} {len(rows):>7,} {_percentile(latencies, 0.5) * 1000:8.1f} "
            f"{_percentile(latencies, 0.99) * 1000:8.1f}  {shown}"
        )
    total: Counter[str] = Counter()
    for stage in stages:
        total += stage.classes()
    print("status classes, whole run: " + ", ".join(f"{k} {v:,}" for k, v in sorted(total.items())))
    refusals = [refusal for stage in stages for refusal in stage.refusals]
    if refusals:
        print(f"\nrefusals: {len(refusals)} 4xx answers")
        _grouped(refusals)
    findings = [finding for stage in stages for finding in stage.findings]
    if not findings:
        print("no 5xx and no connection errors")
        return
    print(f"\nFINDINGS: {len(findings)} 5xx or connection errors")
    _grouped(findings)
    print(f"\nthe server's log ({log}), last lines:\n{_tail(log, 80)}")


def _grouped(answers: list[tuple[str, int, str]]) -> None:
    """One line per route and status: how many, and the first body."""
    for (route, status), n in Counter((route, status) for route, status, _ in answers).items():
        body = next(b for r, s, b in answers if (r, s) == (route, status))
        print(f"  {route}: {status or 'error'} ×{n}: {body}")


@dataclass
class Run:
    """What a run measured, for a caller (the smoke test) to read."""

    stages: list[Stage]
    result: Stage | None
    baseline: Stage | None

    @property
    def samples(self) -> list[tuple[str, int, float]]:
        return [sample for stage in self.stages for sample in stage.samples]


def main(argv: list[str] | None = None) -> Run:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="", help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--duration", type=float, default=600, help="seconds, at most")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument(
        "--clients", type=int, default=8, help="client processes (over ten share delegates)"
    )
    parser.add_argument("--rate", default="step", help="step, closed, or operations a second")
    parser.add_argument("--stage", type=float, default=30, help="seconds per step")
    parser.add_argument("--start-rate", type=float, default=10, help="operations a second")
    parser.add_argument("--step", type=float, default=1.5, help="the rate's factor per step")
    parser.add_argument("--p99-limit", type=float, default=1000, help="ms, for a step to hold")
    parser.add_argument(
        "--baseline", type=float, default=10, help="seconds of GET /health first (0: none)"
    )
    parser.add_argument("--workers", type=int, default=None, help="`commonlab up --workers`")
    parser.add_argument("--progress", type=float, default=10, help="seconds between lines")
    args = parser.parse_args(argv)
    if args.rate not in ("step", "closed"):
        try:
            args.rate = float(args.rate)
        except ValueError:
            parser.error(f"--rate: step, closed or a number, not {args.rate!r}")
        if not (args.rate > 0 and math.isfinite(args.rate)):
            parser.error("--rate: operations a second must be a positive, finite number")
    if args.clients < 1 or args.max_requests < 1:
        parser.error("--clients and --max-requests must be at least 1")
    bounded = all(map(math.isfinite, (args.duration, args.stage, args.start_rate, args.step)))
    if not (bounded and args.duration > 0 and args.stage > 0 and args.start_rate > 0):
        parser.error("--duration, --stage and --start-rate must be positive, --step above 1")
    if not args.step > 1:
        parser.error("--duration, --stage and --start-rate must be positive, --step above 1")
    if args.baseline < 0 or not args.p99_limit > 0:
        parser.error("--baseline must not be negative, --p99-limit must be positive")

    with (
        tempfile.TemporaryDirectory(prefix="commonlab-load-") as tmp,
        scratch_database(args.db) as db_url,
        facility_server(Path(tmp) / "home", db_url, args.workers) as (server, token),
    ):
        setup = seed(server.url, token, clients=args.clients)
        database = "PostgreSQL" if db_url else "SQLite"
        print(
            f"load test on {database}, {args.workers or 1} server worker(s), {args.clients} "
            f"clients, rate {args.rate}, up to {args.duration:g} s and {args.max_requests:,} "
            f"requests; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        clients = Clients(
            setup, clients=args.clients, max_requests=args.max_requests,
            p99_limit_ms=args.p99_limit, began=time.monotonic(),
        )  # fmt: skip
        try:
            baseline = None
            if args.baseline > 0:
                baseline = clients.run(
                    "health", None, args.baseline, every=args.progress, only="health"
                )
                print(_stage_line(baseline) + "  (baseline: the HTTP stack alone)", flush=True)
            if args.rate == "step":
                stages, hold = find_and_hold(
                    clients, duration=args.duration, stage=args.stage, start=args.start_rate,
                    step=args.step, every=args.progress,
                )  # fmt: skip
                if hold is not None:
                    stages.append(hold)
            else:
                rate = None if args.rate == "closed" else args.rate
                hold = clients.run("run", rate, args.duration, every=args.progress)
                stages = [hold]
        finally:
            clients.close()
        states = job_states(setup)
        print("\nstages:")
        for stage in [baseline, *stages] if baseline else stages:
            print(_stage_line(stage))
        result = hold or (stages[-1] if stages else None)
        if result is None:
            print("no stage ran")
        else:
            if args.rate == "step" and hold is None:
                print("no rate held: the figures below are the last step's")
            report(stages, result, server.log)
        print(
            f"jobs submitted: {states.total():,}; once the traffic stopped: "
            + ", ".join(f"{state} {n:,}" for state, n in states.most_common())
        )
    return Run(stages=stages, result=result, baseline=baseline)


if __name__ == "__main__":
    main()
