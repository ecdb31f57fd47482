"""The facility's workload export (GET /api/v1/reports/workload) on many jobs: streamed, as
the route sends it, beside the same jobs read whole, as it did before.

    .venv/bin/python bench/workload_export_bench.py --jobs 100000

A fresh SQLite facility (the demo's seed, the local fleet) with --jobs finished jobs a
minute apart, all inside the default 92-day window. For each form of the export, the time
and the peak of Python's traced memory (tracemalloc) to produce it: streamed (pieces
written as the jobs are read, each dropped once sent, as the route does) and whole (every
job read into a list first, the body built in one string, as the route did before). Then
the client's side: the what-if reading the JSON lines one at a time (`own_jobs`), beside
parsing the whole JSON body at once.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from commonlab.compute import service as compute
from commonlab.compute.models import Job
from commonlab.compute.workload_export import (
    FORMATS,
    ExportWindow,
    exported_jobs,
    open_export,
)
from commonlab.config import Settings
from commonlab.db import Database, utcnow
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import authenticate, bootstrap_operator
from commonlab.simulator.whatif import own_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    facility = open_facility(Settings(home=Path(tempfile.mkdtemp())))
    with facility.db.session() as db:
        operator = authenticate(db, bootstrap_operator(db) or "")
        seed_demo(db)
        compute.ensure_local_fleet(db, cpus=4, memory_gb=8)
        now = utcnow()
        with db.begin():
            db.execute(Job.__table__.insert(), [_job(now, i) for i in range(args.jobs)])
        export = open_export(db, operator)
    print(f"{args.jobs:,} jobs; seconds and peak traced memory per form of the export")
    print("| form | streamed | whole (before) |\n|---|---:|---:|")
    lines: list[str] = []
    for name, (pieces, _) in FORMATS.items():
        streamed = _measure(_drain, facility.db, export, pieces)
        whole, body = _measure(_whole, facility.db, export, pieces, keep=True)
        if name == "ndjson":
            lines = body.splitlines()
        print(f"| {name} | {_cell(streamed)} | {_cell(whole)} |")
    document = {"rows": [json.loads(line)["job"] for line in lines[1:-1]]}
    text = json.dumps(document)
    print(
        f"| client: own_jobs on the lines | {_cell(_measure(own_jobs, lines))} "
        f"| json.loads of the whole body: {_cell(_measure(json.loads, text))} |"
    )
    facility.close()


def _drain(database: Database, export: ExportWindow, pieces: Callable[..., Any]) -> int:
    """What the route sends: each piece written and let go."""
    sent = 0
    with database.session() as db, db.begin():
        for piece in pieces(exported_jobs(db, export), export):
            sent += len(piece)
    return sent


def _whole(database: Database, export: ExportWindow, pieces: Callable[..., Any]) -> str:
    """As the route did before: every job read into memory, then the body in one string."""
    with database.session() as db, db.begin():
        jobs = list(exported_jobs(db, export))
    return "".join(pieces(jobs, export))


def _measure(run: Callable[..., Any], *args: Any, keep: bool = False) -> Any:
    tracemalloc.start()
    began = time.perf_counter()
    result = run(*args)
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return ((seconds, peak), result) if keep else (seconds, peak)


def _cell(figures: tuple[float, float]) -> str:
    return f"{figures[0]:.2f} s, {figures[1]:,.1f} MiB"


def _job(now: object, i: int) -> dict[str, object]:
    ended = now - timedelta(seconds=60 * i)  # type: ignore[operator]
    return {
        "name": "bench",
        "project": "proj-1",
        "allocation_id": 1,
        "submitter_id": 1,
        "command": "true",
        "env": {},
        "inputs": [],
        "accelerator": "cpu",
        "accelerators": 1,
        "cpus": 1,
        "memory_gb": 1,
        "nodes": 1,
        "time_limit_minutes": 60,
        "level": 1,
        "partition_id": 1,
        "executor": "local",
        "state": "succeeded",
        "reserved_hours": Decimal(1),
        "charged_hours": Decimal(1),
        "elapsed_seconds": 600,
        "submitted_at": ended - timedelta(seconds=900),
        "started_at": ended - timedelta(seconds=600),
        "ended_at": ended,
    }


if __name__ == "__main__":
    main()
