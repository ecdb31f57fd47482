"""Admission through the API against a real server process (issue 20). Prints figures;
asserts nothing.

    python bench/admission_bench.py [--seconds S] [--pg URL] [--no-sqlite] [--base TREE]
                                    [--tree TREE] [--workers 1,2] [--clients 1,8]

For each database (SQLite, and PostgreSQL when `--pg` names a cluster: the bench makes a
database of its own there) and each source tree (this one, and `--base`, a checkout of an
earlier commit, e.g. `git worktree add /tmp/base <rev>`; `--tree` measures another checkout
in this one's place), a facility is served by uvicorn in a process of its own (`serve`,
below: the job controller is left stopped, so admitted jobs wait as on a full cluster and
only admission is measured). One client process then keeps C
keep-alive connections busy for S seconds on each of: `GET /api/v1/health` (the HTTP stack's
ceiling: no database, no token), `GET /api/v1/me` (one token's authentication and a read),
and `POST /api/v1/jobs` (admission with all its rules). Beside them, plain `sbatch --hold`
submissions to the test Slurm (`scripts/slurm_up`) from 1 and C concurrent callers, the jobs
cancelled after; skipped, saying so, when Slurm does not answer.

The client speaks raw HTTP/1.1 over asyncio streams (a few microseconds a request), so that
on a small machine the client takes as little of the CPU as it can from the server it
measures. Every answer that is not 200/201 counts as an error and is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Rate limits would refuse a benchmark's burst: off in the served facility (a tree older
# than the limits ignores these).
UNLIMITED_ENV = {"COMMONLAB_RATE_LIMIT_PER_TOKEN": "0", "COMMONLAB_RATE_LIMIT_PER_ADDRESS": "0"}


# The server -------------------------------------------------------------------------------------


def serve(tree: Path, home: Path, db_url: str, port: int, workers: int) -> None:
    """Serve a facility from `tree`'s source with uvicorn, job controller stopped; print the
    operator's token as a JSON line once the database is ready. With several workers the
    listening socket is bound once and each forked worker serves it."""
    sys.path.insert(0, str(tree / "src"))
    import uvicorn

    import commonlab
    from commonlab.app import create_app
    from commonlab.compute.job_controller import JobController
    from commonlab.config import load_settings
    from commonlab.facility import open_facility
    from commonlab.identity.service import bootstrap_operator

    settings = load_settings(home=home, database_url=db_url, port=port)
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    facility.db.dispose()
    print(json.dumps({"token": token, "source": commonlab.__file__}), flush=True)

    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every keep-alive answer waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)

    # Admitted jobs wait, as on a full cluster: admission only. Patched on the class, as the
    # app may hand the controller's start to a leader lease before it is returned.
    JobController.start = lambda self: None  # type: ignore[method-assign]

    def worker() -> None:
        facility = open_facility(settings)
        app = create_app(facility)
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])

    if workers == 1:
        worker()
        return
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                worker()
            finally:
                os._exit(0)
        children.append(pid)

    def stop(*_: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):  # one that ended already
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    for pid in children:
        os.waitpid(pid, 0)


@dataclass
class Server:
    """`serve` in a process of its own, and what the bench needs of it."""

    tree: Path
    db_url: str
    workers: int
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="admission-")))
    port: int = 0
    token: str = ""
    process: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, **UNLIMITED_ENV, "PYTHONPATH": str(self.tree / "src")}
        command = [sys.executable, __file__, "serve", "--tree", str(self.tree)]
        command += ["--home", str(self.home / "home"), "--db", self.db_url]
        command += ["--port", str(self.port), "--workers", str(self.workers)]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the server from {self.tree} did not start")
        started = json.loads(line)
        self.token = started["token"]
        if not started["source"].startswith(str(self.tree)):
            raise SystemExit(f"served {started['source']}, not the tree {self.tree}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


# The client -------------------------------------------------------------------------------------


@dataclass
class Result:
    rate: float  # answers per second
    latencies: list[float]
    errors: dict[int, int]  # status -> count, for every answer that was not 200/201

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while True:  # chunked
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def _connection(port: int, request: bytes, stop_at: float, result: Result) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            writer.write(request)
            status, _ = await _answer(reader)
            result.latencies.append(time.perf_counter() - began)
            if status not in (200, 201):
                result.errors[status] = result.errors.get(status, 0) + 1
    finally:
        writer.close()


def hammer(port: int, request: bytes, *, clients: int, seconds: float) -> Result:
    """`clients` keep-alive connections sending `request` back to back for `seconds`."""

    async def run() -> Result:
        result = Result(0.0, [], {})
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(_connection(port, request, stop_at, result) for _ in range(clients)))
        result.rate = len(result.latencies) / (time.perf_counter() - began)
        return result

    return asyncio.run(run())


def _request(method: str, path: str, token: str, body: dict[str, object] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


# The runs ---------------------------------------------------------------------------------------


def _project(url: str, operator: str) -> tuple[str, str]:
    """A project with hours enough for any run, and its PI's token, made through the API."""
    import httpx

    sys.path.insert(0, str(ROOT))
    from tests.compute.helpers import award_project

    with httpx.Client(base_url=url, timeout=60) as api:
        project = award_project(
            api,  # type: ignore[arg-type]
            {"Authorization": f"Bearer {operator}"},
            budget={"cpu": "20000"},
        )
    return project.name, project.pi_auth["Authorization"].split()[1]


def measure(server: Server, seconds: float, clients: list[int]) -> dict[str, Result]:
    name, token = _project(server.url, server.token)
    job = {"project": name, "command": "true", "accelerator": "cpu", "time_limit_minutes": 1}
    routes = {
        "GET /health": _request("GET", "/api/v1/health", token),
        "GET /me": _request("GET", "/api/v1/me", token),
        "POST /jobs": _request("POST", "/api/v1/jobs", token, job),
    }
    results = {}
    for route, request in routes.items():
        hammer(server.port, request, clients=1, seconds=min(1.0, seconds))  # warm up
        for n in clients:
            results[f"{route} x{n}"] = hammer(server.port, request, clients=n, seconds=seconds)
    return results


def _pg_database(admin_url: str, name: str) -> str:
    """A fresh, empty database `name` on the cluster `admin_url` points at."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def sbatch_rates(seconds: float, clients: list[int]) -> dict[str, Result] | str:
    """Plain `sbatch --hold` submissions from n concurrent callers; every job cancelled
    after. A line saying why when Slurm is not there."""
    if shutil.which("sbatch") is None:
        return "skipped: no sbatch on this machine"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "skipped: scontrol ping did not answer (start it: scripts/slurm_up)"
    if "UP" not in ping.stdout:
        return "skipped: Slurm is not up (start it: scripts/slurm_up)"
    folder = Path(tempfile.mkdtemp(prefix="admission-sbatch-"))
    command = ["sbatch", "--hold", "--parsable", "--time=1", f"--output={folder}/%j.out"]
    command += ["--wrap", "true"]
    results: dict[str, Result] = {}
    for n in clients:
        results[f"sbatch --hold x{n}"], ids = _sbatch_burst(command, n, seconds)
        for start in range(0, len(ids), 500):
            subprocess.run(["scancel", *ids[start : start + 500]], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)
    return results


def _sbatch_burst(command: list[str], callers: int, seconds: float) -> tuple[Result, list[str]]:
    """`callers` threads running `command` back to back for `seconds`; the job ids."""
    result = Result(0.0, [], {})
    ids: list[str] = []
    stop_at = time.perf_counter() + seconds

    def submit() -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            result.latencies.append(time.perf_counter() - began)
            if done.returncode:
                result.errors[done.returncode] = result.errors.get(done.returncode, 0) + 1
            else:
                ids.append(done.stdout.strip().split(";")[0])

    began = time.perf_counter()
    threads = [threading.Thread(target=submit) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.rate = len(result.latencies) / (time.perf_counter() - began)
    return result, ids


def _line(label: str, result: Result) -> str:
    errors = sum(result.errors.values())
    detail = f"  errors {errors} {dict(result.errors)}" if errors else ""
    return (
        f"  {label:<24} {result.rate:8.1f} /s   p50 {result.percentile(0.5):7.1f} ms   "
        f"p99 {result.percentile(0.99):7.1f} ms{detail}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("serve", help="(internal) serve one facility")
    run.add_argument("--tree", type=Path, required=True)
    run.add_argument("--home", type=Path, required=True)
    run.add_argument("--db", default="")
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pg", default="", help="PostgreSQL admin URL (a cluster to use)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--base", type=Path, help="a checkout of the baseline commit")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the tree measured (this one)")
    parser.add_argument("--workers", default="1", help="comma-separated, e.g. 1,2")
    parser.add_argument("--clients", default="1,8", help="comma-separated, e.g. 1,8")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.tree, args.home, args.db, args.port, args.workers)
        return

    clients = [int(n) for n in args.clients.split(",")]
    workers = [int(n) for n in args.workers.split(",")]
    trees = [("this tree", args.tree.resolve())]
    trees += [("baseline", args.base.resolve())] if args.base else []
    databases = ([] if args.no_sqlite else [("SQLite", "")]) + (
        [("PostgreSQL", args.pg)] if args.pg else []
    )
    print(
        f"admission bench: {args.seconds:g} s per figure, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    for db_name, admin_url in databases:
        for n_workers in workers:
            for tree_name, tree in trees:
                db_url = _pg_database(admin_url, "admission_bench") if admin_url else ""
                server = Server(tree, db_url, n_workers).start()
                try:
                    results = measure(server, args.seconds, clients)
                finally:
                    server.stop()
                print(f"{db_name}, {n_workers} worker(s), {tree_name} ({tree}):")
                for label, result in results.items():
                    print(_line(label, result))
    slurm = sbatch_rates(args.seconds, clients)
    print("plain sbatch --hold on the test Slurm:")
    if isinstance(slurm, str):
        print(f"  {slurm}")
    else:
        for label, result in slurm.items():
            print(_line(label, result))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
