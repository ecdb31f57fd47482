"""Benchmark of `commonlab audit` on a long log (issue 17). Prints figures; asserts nothing.

    python bench/audit_bench.py [--entries 1000000] [--db URL]

Builds a facility seeded as `up --demo` seeds it, then appends `--entries` entries of the
kind a busy facility writes most (each job: admitted, hours reserved, queued, running,
succeeded, hours settled; six entries) through `record.append`, and signs them. Then, on the
same log, side by side:

- `record verify` (the baseline): every leaf, root, signature and tile, from the database;
- `record mirror`: the tiles and entry bundles fetched over the facility's HTTP routes;
- the audit: the log read and verified over HTTP (as `audit URL`) and from the mirror (as
  `audit --from-tiles`), every entry replayed into every Book, and the comparison with the
  facility's public routes.

The facility is served by uvicorn in a process of its own, on this machine's loopback.

The synthetic jobs are on the record only (not in the facility's tables), so the facility
disagrees with the record about them and the comparison reports differences; its cost grows
with what the facility publishes (motions, allocations, quarters), not with the log's length.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from commonlab import record
from commonlab.allocation.events import AllocationEvent
from commonlab.audit.log import DirectorySource, HttpSource, read_log
from commonlab.audit.mirror import mirror
from commonlab.audit.published import Published
from commonlab.audit.replay import Replay
from commonlab.audit.run import audit, books
from commonlab.compute.events import ComputeEvent
from commonlab.config import Settings
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.policy.principal import SYSTEM
from commonlab.record.note import Verifier
from commonlab.record.sequencer import sequence
from commonlab.record.verify import verify_store

BATCH = 600  # entries per transaction: 100 jobs


def job_entries(job: int, ledger: int, day: str) -> list[tuple[Any, str, dict[str, Any]]]:
    """One job's six entries, as compute and allocation write them (schema 2)."""
    key, hours = f"job/{job}", "0.02"
    state = {"project": "proj-4"}
    return [
        (
            ComputeEvent.JobAdmitted,
            key,
            {
                "project": "proj-4",
                "allocation": 4,
                "partition": "local",
                "class": "cpu",
                "accelerators": 1,
                "nodes": 1,
                "level": "CL-1",
                "reserved_hours": hours,
                "inputs": [],
                "resubmit_of": None,
            },
        ),
        (
            AllocationEvent.HoursReserved,
            "allocation/4",
            {"ledger": ledger, "class": "cpu", "hours": hours, "job": key, "on": day},
        ),
        (ComputeEvent.JobQueued, key, state),
        (ComputeEvent.JobRunning, key, state),
        (
            ComputeEvent.JobSucceeded,
            key,
            {**state, "charged_hours": "0.01", "elapsed_seconds": 30, "exit_code": 0},
        ),
        (
            AllocationEvent.HoursSettled,
            "allocation/4",
            {
                "ledger": ledger + 1,
                "reservation": ledger,
                "class": "cpu",
                "hours": "0.01",
                "job": key,
                "on": day,
            },
        ),
    ]


def timed(label: str, work: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(f"  {label:<52} {seconds:8.1f} s")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", default="", help="database URL (default: SQLite in a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        facility = open_facility(Settings(home=Path(tmp) / "home", database_url=args.db))
        with facility.db.session() as db:
            bootstrap_operator(db)
            seed_demo(db)
        facility.sequence_now()
        day = time.strftime("%Y-%m-%d", time.gmtime())
        jobs = args.entries // 6
        start = time.perf_counter()
        with Progress() as bar, facility.db.session() as db:
            task = bar.add_task("appending", total=jobs * 6)
            for first in range(0, jobs, BATCH // 6):
                with db.begin():
                    for job in range(first, min(jobs, first + BATCH // 6)):
                        entries = job_entries(10_000 + job, 10_000 + 2 * job, day)
                        for event, subject, data in entries:
                            record.append(db, event, actor=SYSTEM, subject=subject, data=data)
                while sequence(db, facility.signer):
                    pass
                bar.update(task, completed=min(jobs, first + BATCH // 6) * 6)
        appended = time.perf_counter() - start

        dialect = facility.db.engine.dialect.name
        print(f"audit of a log of {jobs * 6:,} appended entries (+ the demo's), {dialect}")
        print(f"  built in {appended:.0f} s (append + sign)")
        with facility.db.session() as db:
            verify_seconds, report = timed(
                "record verify (baseline: the store, from scratch)",
                lambda: verify_store(db, Verifier.from_key(facility.signer.verifier_key())),
            )
        assert report.ok, report.problems[:3]
        key = facility.signer.verifier_key()
        with served(Path(tmp) / "home", args.db) as url, httpx.Client(timeout=60) as http:
            folder = Path(tmp) / "mirror"
            timed(
                "record mirror (every tile and bundle, checked)",
                lambda: mirror(url, folder, http=http),
            )
            url_seconds, whole = timed(
                "audit URL (read, verify, replay, compare)",
                lambda: audit(read_log(HttpSource(url, http), key), Published(url, http)),
            )
            read_seconds, log = timed(
                "audit --from-tiles: read and verify the mirror",
                lambda: read_log(DirectorySource(folder), key),
            )

            def replay() -> Replay:
                replaying = Replay(books(log))
                replaying.feed(log.entries)
                return replaying

            _, replayed = timed("  (replay alone: every entry into every Book)", replay)
            compare_seconds, _ = timed(
                "audit --from-tiles: replay and compare",
                lambda: audit(log, Published(url, http)),
            )
        print(f"  entries in the log: {log.size:,}; replayed {replayed.replayed:,}")
        mirror_total = read_seconds + compare_seconds
        print(
            f"  audit URL {url_seconds:.1f} s ({url_seconds / verify_seconds:.2f}x record "
            f"verify); from a mirror {mirror_total:.1f} s "
            f"({mirror_total / verify_seconds:.2f}x); differences "
            f"{len(whole.findings.differences):,} (the synthetic jobs: see above)"
        )
        facility.close()


@contextmanager
def served(home: Path, db_url: str) -> Iterator[str]:
    """The facility served by uvicorn in a process of its own, as in production."""
    port = _free_port()
    code = (
        "import uvicorn\n"
        "from commonlab.app import create_app\n"
        "from commonlab.config import Settings\n"
        "from commonlab.facility import open_facility\n"
        f"facility = open_facility(Settings(home={str(home)!r}, database_url={db_url!r}))\n"
        f"uvicorn.run(create_app(facility), host='127.0.0.1', port={port}, "
        "log_level='warning', access_log=False)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
