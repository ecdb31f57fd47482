"""How long a facility of several processes goes without a leader when its leader dies
(issue 20). Prints figures; asserts nothing.

    python bench/leader_bench.py [--servers 3] [--kills 5] [--pg URL] [--no-sqlite]

For each database (SQLite, and PostgreSQL when `--pg` names a cluster: the bench makes a
database of its own there), `--servers` real `commonlab up` processes share one home and
database. Each round SIGKILLs the process holding the leader lease and times, from the kill,
until `leader_status` (pg_locks, or the lock file) names another holder: the takeover. The
killed process is then started again, and the time until it answers `GET /api/v1/health` is
the baseline beside it: what a facility of one process, restarted by its supervisor at once,
goes without a sequencer and job controller (and without serving at all).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from commonlab.app import prepare_fleet
from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.operations.leader import leader_status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(home: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COMMONLAB_HOME": str(home), "COMMONLAB_DATABASE_URL": url}
    with open(home.parent / f"server-{port}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "commonlab.cli", "up", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_serving(port: int, server: subprocess.Popen[bytes], home: Path) -> float:
    began = time.monotonic()
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return time.monotonic() - began
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            log = (home.parent / f"server-{port}.log").read_text()
            raise SystemExit(f"the server on port {port} ended:\n{log[-3000:]}")
        time.sleep(0.02)


def holder(facility) -> int | None:
    status = leader_status(facility)
    return int(status.holder.rsplit(" ", 1)[1]) if status.held and status.holder else None


def run(url: str, *, servers: int, kills: int) -> None:
    with tempfile.TemporaryDirectory(prefix="leader-bench-") as tmp:
        home = Path(tmp) / "home"
        facility = open_facility(Settings(home=home, database_url=url))
        # What the first host does before the others start (docs/operators.md).
        with facility.db.session() as session:
            bootstrap_operator(session)
        prepare_fleet(facility)
        ports = [free_port() for _ in range(servers)]
        running = {port: start(home, url, port) for port in ports}
        takeovers: list[float] = []
        restarts: list[float] = []
        try:
            for port in ports:
                wait_serving(port, running[port], home)
            for _ in range(kills):
                while (first := holder(facility)) is None:
                    time.sleep(0.02)
                port = next(p for p, proc in running.items() if proc.pid == first)
                os.kill(first, signal.SIGKILL)
                killed = time.monotonic()
                while holder(facility) in (None, first):
                    time.sleep(0.005)
                takeovers.append(time.monotonic() - killed)
                running[port].wait()
                running[port] = start(home, url, port)
                restarts.append(wait_serving(port, running[port], home))
        finally:
            for proc in running.values():
                proc.terminate()
            for proc in running.values():
                proc.wait()
            facility.close()
    name = make_url(url).get_backend_name()
    print(
        f"{name:10} takeover by a follower: median {statistics.median(takeovers):.2f} s, "
        f"max {max(takeovers):.2f} s ({kills} kills, {servers} processes) | baseline, one "
        f"process restarted to serving: median {statistics.median(restarts):.2f} s, "
        f"max {max(restarts):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("COMMONLAB_TEST_DATABASE_URL", ""))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/commonlab.db", servers=args.servers, kills=args.kills)
    if args.pg:
        name = f"leader_bench_{os.getpid()}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            run(url, servers=args.servers, kills=args.kills)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
