"""The facility's workload export (GET /api/v1/reports/workload) on many jobs.

    .venv/bin/python bench/workload_export_bench.py --jobs 100000

A fresh SQLite facility (the demo's seed, the local fleet) with --jobs finished jobs a
minute apart, all inside the default 92-day window: the time to read them (export_workload),
to write the plain CSV, to build the JSON variant's rows, and to encode those rows two ways:
FastAPI's `jsonable_encoder` (what a route returning a dict pays) beside `json.dumps` alone
(what the route pays, returning a JSONResponse of plain values).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from fastapi.encoders import jsonable_encoder

from commonlab.compute import service as compute
from commonlab.compute.models import Job
from commonlab.compute.workload_export import as_row, export_workload, to_csv
from commonlab.config import Settings
from commonlab.db import utcnow
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import authenticate, bootstrap_operator


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
        started = time.perf_counter()
        export = export_workload(db, operator)
        read = time.perf_counter()
        text = to_csv(export)
        written = time.perf_counter()
        body = {**export.summary(), "rows": [as_row(job, export) for job in export.jobs]}
        rows = time.perf_counter()
        json.dumps(jsonable_encoder(body))
        encoded = time.perf_counter()
        json.dumps(body)
        dumped = time.perf_counter()
    facility.close()
    print(
        f"{len(export.jobs):,} jobs: read {read - started:.2f} s; CSV {written - read:.2f} s "
        f"({len(text) / 1e6:.1f} MB); JSON rows {rows - written:.2f} s, encoded by "
        f"jsonable_encoder {encoded - rows:.2f} s, by json.dumps {dumped - encoded:.2f} s"
    )


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
