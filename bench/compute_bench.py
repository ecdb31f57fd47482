"""Benchmarks of compute (issue: compute). Prints figures; asserts nothing.

    python bench/compute_bench.py admission [--db URL] [--seconds S] [--clients C]
    python bench/compute_bench.py latency   [--runs N] [--slurm]
    python bench/compute_bench.py fleet     [--db URL]
    python bench/compute_bench.py queue     [--db URL] [--jobs N]

`admission` serves a facility with uvicorn over real HTTP and has C clients submit jobs for
S seconds (the job controller is left stopped, so admitted jobs wait as on a full cluster and
only admission is measured); beside it, in the same run, the same clients on `GET /health`
(the HTTP stack's ceiling) and `compute.service.submit_job` called in-process (the ceiling
without HTTP).

`fleet` applies examples/fleet-100k.toml (100,384 accelerators, 12,548 nodes) and times the
fleet API and portal page beside the same reads of the one-partition local fleet.

`queue` queues N jobs for the 4 slots of the local fleet and times what one job-controller
tick reads of them (every submission wakes a tick): the whole queue, as before, beside the
free slots plus `HANDOVER_LOOKAHEAD`, as now, in the same run.

`latency` measures submit-to-running: the time from a job's submission until its command
starts (the command prints the clock). Through commonlab on the local executor beside a bare
`subprocess.Popen` of the same command; with `--slurm`, through commonlab on Slurm beside
plain `sbatch` of the same command, in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.compute.helpers import Project, award_project, service_lab
from tests.helpers import auth

from commonlab.app import create_app
from commonlab.compute import service as compute
from commonlab.compute.job_controller import HANDOVER_LOOKAHEAD
from commonlab.compute.schemas import JobCreate
from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.identity import service as identity
from commonlab.identity.service import bootstrap_operator

ROOT = Path(__file__).resolve().parents[1]
MARKER = "date +%s.%N"  # the command: it prints when it started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Served:
    """A facility over real HTTP on a free port, in this process (uvicorn in a thread)."""

    def __init__(self, settings: Settings, *, controller: bool) -> None:
        import uvicorn

        self.facility: Facility = open_facility(settings)
        with self.facility.db.session() as session:
            self.operator = auth(bootstrap_operator(session) or "")
        self.app = create_app(self.facility)
        if not controller:
            self.app.state.jobs.start = lambda: None  # admitted jobs wait: admission only
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([sock],), daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.api = httpx.Client(base_url=self.url, timeout=60)

    def project(self, budget: dict[str, str]) -> Project:
        return award_project(self.api, self.operator, budget=budget)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.facility.close()


def _client_process(url, seconds, call, results):  # runs in a child process
    latencies = []
    stop = time.perf_counter() + seconds
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            call(http)
            latencies.append(time.perf_counter() - started)
    results.put(latencies)


def _hammer(clients: int, seconds: float, call: Callable[[httpx.Client], None], url: str):
    """`clients` processes (not threads: they must not share the server's interpreter lock)
    calling `call` for `seconds`; returns (calls per second, latencies)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [
        context.Process(target=_client_process, args=(url, seconds, call, results))
        for _ in range(clients)
    ]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    latencies = [x for _ in workers for x in results.get()]
    for worker in workers:
        worker.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def bench_admission(db_url: str | None, seconds: float, clients: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Rate limits off: the bench submits from one token as fast as the facility admits.
        settings = Settings(
            home=Path(tmp) / "home",
            database_url=db_url or "",
            rate_limit_per_token=0,
            rate_limit_per_address=0,
        )
        lab = Served(settings, controller=False)
        dialect = lab.facility.db.engine.dialect.name
        project = lab.project({"cpu": "20000"})
        body = {
            "project": project.name,
            "command": "true",
            "accelerator": "cpu",
            "time_limit_minutes": 1,
        }

        def health(http: httpx.Client) -> None:
            assert http.get("/api/v1/health").status_code == 200

        def submit(http: httpx.Client) -> None:
            answer = http.post("/api/v1/jobs", json=body, headers=project.pi_auth)
            assert answer.status_code == 201, answer.text

        health_rate, _ = _hammer(clients, seconds, health, lab.url)
        rate, latencies = _hammer(clients, seconds, submit, lab.url)

        # In-process, no HTTP: the service alone, one caller.
        with lab.facility.db.session() as db:
            pi = identity.authenticate(db, project.pi_auth["Authorization"].split()[1])
        spec = JobCreate(**body)
        n, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            with lab.facility.db.session() as db:
                compute.submit_job(db, pi, spec, executor="local")
            n += 1
        service_rate = n / (time.perf_counter() - began)
        lab.close()
    print(f"admission on {dialect}, {clients} clients, {seconds:g} s each, 2-core machine")
    print(f"  GET /health (HTTP ceiling)      {health_rate:8.0f} req/s")
    p50, p99 = (_percentile(latencies, q) * 1000 for q in (0.5, 0.99))
    print(
        f"  POST /jobs (admission)          {rate:8.0f} jobs/s   p50 {p50:.1f} ms  p99 {p99:.1f} ms"
    )
    print(f"  submit_job in-process, 1 caller {service_rate:8.0f} jobs/s")


def _job_output(api: httpx.Client, job_id: int, headers: dict[str, str]) -> str:
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed", "refused", "cancelled", "timed_out"):
            assert job["state"] == "succeeded", job
            return str(api.get(f"/api/v1/jobs/{job_id}/logs", headers=headers).json()["text"])
        time.sleep(0.05)


def _through_commonlab(lab: Served, project: Project, runs: int) -> list[float]:
    body = {"project": project.name, "command": MARKER, "accelerator": "cpu"}
    body["time_limit_minutes"] = 1
    delays = []
    for _ in range(runs):
        submitted = time.time()
        job = lab.api.post("/api/v1/jobs", json=body, headers=project.pi_auth).json()
        started = float(_job_output(lab.api, job["id"], project.pi_auth))
        delays.append(started - submitted)
    return delays


def _bare_subprocess(runs: int) -> list[float]:
    delays = []
    for _ in range(runs):
        submitted = time.time()
        out = subprocess.run(["/bin/sh", "-c", MARKER], capture_output=True, text=True)
        delays.append(float(out.stdout) - submitted)
    return delays


def _plain_sbatch(runs: int, folder: Path, user: str, account: str) -> list[float]:
    delays = []
    for i in range(runs):
        out = folder / f"plain-{i}.out"
        submitted = time.time()
        subprocess.run(
            ["sbatch", "--parsable", f"--uid={user}", f"--account={account}", "--time=1",
             f"--output={out}", "--wrap", MARKER],
            check=True, capture_output=True,
        )  # fmt: skip
        while not out.exists() or not out.read_text().strip():
            time.sleep(0.02)
        delays.append(float(out.read_text()) - submitted)
    return delays


def _summary(name: str, delays: list[float]) -> str:
    return (
        f"  {name:<34} median {statistics.median(delays) * 1000:7.0f} ms   "
        f"p90 {_percentile(delays, 0.9) * 1000:7.0f} ms   (n={len(delays)})"
    )


def bench_latency(runs: int, slurm: bool) -> None:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        lab = Served(Settings(home=Path(tmp) / "home"), controller=True)
        project = lab.project({"cpu": "1000"})
        _through_commonlab(lab, project, 1)  # warm up
        local = _through_commonlab(lab, project, runs)
        bare = _bare_subprocess(runs)
        lab.close()
        lines += [_summary("commonlab, local executor", local), _summary("bare subprocess", bare)]
        ratio = statistics.median(local) / statistics.median(bare)
        lines.append(f"  local: commonlab / bare = {ratio:.1f}x (medians)")
    if slurm:
        lines += _slurm_latency(runs)
    print(f"submit-to-running, {runs} jobs each, 2-core machine")
    print("\n".join(lines))


def _slurm_latency(runs: int) -> list[str]:
    if shutil.which("sbatch") is None or os.getuid() != 0:
        return ["  slurm: skipped (needs Slurm from scripts/slurm_up, run as root)"]
    state = Path(os.environ.get("COMMONLAB_SLURM_DIR", "/var/tmp/commonlab-slurm"))
    folder = Path(tempfile.mkdtemp(dir=state / "jobs"))
    shutil.chown(folder, "clrunner")
    settings = Settings(
        home=Path(tempfile.mkdtemp()),
        executor="slurm",
        job_root=folder / "jobs",
        slurm_user="clrunner",
        slurm_account_prefix="bench-",
        compute_poll_ms=50,
        account_sync_minutes=0,
        share_steer_minutes=0,
    )
    (folder / "jobs").mkdir()
    shutil.chown(folder / "jobs", "clrunner")
    lab = Served(settings, controller=True)
    cpus = os.cpu_count() or 1
    lab.api.put(
        "/api/v1/fleet",
        json={
            "sites": [{"name": "here", "country": "IT"}],
            "partitions": [
                {"name": "cpu", "site": "here", "accelerator": "cpu", "nodes": 1,
                 "accelerators_per_node": cpus, "cpus_per_node": cpus, "memory_gb_per_node": 8}
            ],
        },
        headers=lab.operator,
    ).raise_for_status()  # fmt: skip
    project = lab.project({"cpu": "1000"})
    lab.api.post("/api/v1/fleet/accounts/sync", json={}, headers=lab.operator).raise_for_status()
    _through_commonlab(lab, project, 1)  # warm up
    through = _through_commonlab(lab, project, runs)
    plain = _plain_sbatch(runs, folder, "clrunner", "cl-tests")
    lab.close()
    ratio = statistics.median(through) / statistics.median(plain)
    return [
        _summary("commonlab, slurm executor", through),
        _summary("plain sbatch", plain),
        f"  slurm: commonlab / plain sbatch = {ratio:.2f}x (medians)",
    ]


def bench_fleet(db_url: str | None) -> None:
    import tomllib

    document = tomllib.loads((ROOT / "examples" / "fleet-100k.toml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        lab = Served(Settings(home=Path(tmp) / "home", database_url=db_url or ""), controller=False)

        def timed(path: str, n: int = 20) -> float:
            times = []
            for _ in range(n):
                began = time.perf_counter()
                lab.api.get(path).raise_for_status()
                times.append(time.perf_counter() - began)
            return statistics.median(times) * 1000

        small = (timed("/api/v1/fleet"), timed("/fleet"))
        began = time.perf_counter()
        applied = lab.api.put("/api/v1/fleet", json=document, headers=lab.operator)
        applied.raise_for_status()
        apply_s = time.perf_counter() - began
        big = (timed("/api/v1/fleet"), timed("/fleet"))
        total = lab.api.get("/api/v1/fleet").json()["accelerators"]
        dialect = lab.facility.db.engine.dialect.name
        lab.close()
    print(f"fleet reads on {dialect}: one local partition vs {total:,} accelerators")
    print(f"  apply the 100k fleet document     {apply_s:6.2f} s")
    print(f"  GET /api/v1/fleet  median {small[0]:6.1f} ms (local)  {big[0]:6.1f} ms (100k)")
    print(f"  GET /fleet (page)  median {small[1]:6.1f} ms (local)  {big[1]:6.1f} ms (100k)")


def bench_queue(db_url: str | None, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        facility = open_facility(Settings(home=Path(home), database_url=db_url or ""))
        with service_lab(facility) as lab:
            spec = JobCreate(
                project="proj-1",
                command="true",
                accelerator="cpu",
                accelerators=1,
                time_limit_minutes=1,
            )
            for _ in range(jobs):
                compute.submit_job(lab.db, lab.pi, spec, executor="local")
            with facility.db.session() as db:
                compute.enqueue_admitted(db)
            print(f"{jobs:,} jobs waiting for 4 local slots, {facility.db.engine.dialect.name}")
            for label, limit in (
                ("the whole queue (before)", None),
                (f"4 free + {HANDOVER_LOOKAHEAD} (now)", 4 + HANDOVER_LOOKAHEAD),
            ):
                times = []
                for _ in range(20):
                    with facility.db.session() as db:
                        began = time.perf_counter()
                        rows = compute.waiting_for_handover(db, "local", limit=limit)
                        times.append(time.perf_counter() - began)
                median = statistics.median(times) * 1000
                print(f"  a tick reads {label:26s} {len(rows):6,} jobs  median {median:7.2f} ms")
        facility.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    admission = sub.add_parser("admission")
    admission.add_argument("--db", default=None, help="database URL (default: SQLite)")
    admission.add_argument("--seconds", type=float, default=10)
    admission.add_argument("--clients", type=int, default=4)
    latency = sub.add_parser("latency")
    latency.add_argument("--runs", type=int, default=10)
    latency.add_argument("--slurm", action="store_true")
    fleet = sub.add_parser("fleet")
    fleet.add_argument("--db", default=None, help="database URL (default: SQLite)")
    queue = sub.add_parser("queue")
    queue.add_argument("--db", default=None, help="database URL (default: SQLite)")
    queue.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.what == "admission":
        bench_admission(args.db, args.seconds, args.clients)
    elif args.what == "fleet":
        bench_fleet(args.db)
    elif args.what == "queue":
        bench_queue(args.db, args.jobs)
    else:
        bench_latency(args.runs, args.slurm)


if __name__ == "__main__":
    main()
