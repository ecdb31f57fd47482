"""How long from submitting a training workload to its first optimizer step, on the local
executor or on Slurm, beside the executor's own start-up measured in the same run.

    .venv/bin/python bench/workload_start_bench.py --executor local --rounds 3
    .venv/bin/python bench/workload_start_bench.py --executor slurm --rounds 3   # as root,
        # after scripts/slurm_up, from a checkout whose .venv every user may run

A demo facility is served on a free port (the job reaches it over HTTP like any job). Each
round submits, in turn:

  baseline   a plain job (`true`): submit -> the facility sees it running or done; what any
             job pays (admission, handover, the executor starting it, observing it)
  workload   a tiny GPT-2 `train` workload: submit -> its first metrics point (step 1) is
             in the facility; adds the job's `commonlab workload run` reading its
             configuration, pulling the dataset, importing PyTorch and transformers, learning
             the tokenizer, and the first step itself

Rounds alternate so a machine that gets busier midway weighs on both; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.demo import seed_demo
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator

CONFIG = {
    "model": {"architecture": "gpt2", "size": {"n_layer": 2, "n_head": 2, "n_embd": 64}},
    "tokenizer": {"vocab_size": 512},
    "sequence_length": 32,
    "batch_size": 8,
    "max_steps": 3,
    "log_every": 1,
}
LINES = [f"line {i}: the facility trains open models on open data." for i in range(400)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Facility:
    def __init__(self, home: Path, executor: str) -> None:
        port = free_port()
        extra: dict = {}
        if executor == "slurm":
            from tests.slurm_fixtures import RUN_AS, SlurmCluster  # noqa: F401

            extra = {"executor": "slurm", "slurm_user": RUN_AS, "slurm_user_slots": 1,
                     "slurm_account_prefix": f"b{uuid.uuid4().hex[:6]}-",
                     "job_root": Path("/var/tmp/commonlab-slurm/jobs")}  # fmt: skip
        self.settings = Settings(home=home, port=port, sequencer_interval_ms=5, **extra)
        self.facility = open_facility(self.settings)
        with self.facility.db.session() as db:
            operator = bootstrap_operator(db)
        with self.facility.db.session() as db:
            self.pi = {"Authorization": f"Bearer {seed_demo(db)}"}
        config = uvicorn.Config(create_app(self.facility), host="127.0.0.1", port=port,
                                log_level="warning", log_config=None)  # fmt: skip
        self.server = uvicorn.Server(config)
        threading.Thread(target=self.server.run, daemon=True).start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        while True:
            try:
                if self.http.get("/api/v1/health").status_code == 200:
                    break
            except httpx.ConnectError:
                time.sleep(0.05)
        if executor == "slurm":
            operator_h = {"Authorization": f"Bearer {operator}"}
            fleet = _slurm_fleet()
            assert self.http.put("/api/v1/fleet", json=fleet, headers=operator_h).is_success
            assert self.http.post("/api/v1/fleet/accounts/sync", json={},
                                  headers=operator_h).is_success  # fmt: skip
        self.dataset = self._publish()

    def _publish(self) -> str:
        from commonlab.cli.main import main

        folder = Path(tempfile.mkdtemp()) / "corpus"
        folder.mkdir()
        (folder / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in LINES))
        os.environ["COMMONLAB_URL"] = str(self.http.base_url)
        os.environ["COMMONLAB_TOKEN"] = self.pi["Authorization"].split()[1]
        try:
            main(["dataset", "push", str(folder), "--repo", "proj-1/corpus"])
        except SystemExit as exc:
            assert not exc.code, exc.code
        return "datasets/proj-1/corpus@1"

    def baseline(self) -> float:
        started = time.monotonic()
        job = self.http.post("/api/v1/jobs", headers=self.pi, json={
            "project": "proj-1", "command": "true", "accelerator": "cpu"}).json()  # fmt: skip
        while self._job(job["id"])["state"] not in ("running", "succeeded", "failed"):
            time.sleep(0.05)
        return time.monotonic() - started

    def workload(self) -> float:
        started = time.monotonic()
        made = self.http.post("/api/v1/workloads/train", headers=self.pi, json={
            "project": "proj-1", "config": CONFIG, "dataset": self.dataset,
            "out": f"models/proj-1/bench-{uuid.uuid4().hex[:6]}", "time_limit_minutes": 10,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        job_id = made.json()["job_id"]
        while True:
            points = self.http.get(f"/api/v1/jobs/{job_id}/metrics", headers=self.pi).json()
            if points.get("points"):
                took = time.monotonic() - started
                break
            if self._job(job_id)["state"] in ("failed", "cancelled", "timed_out"):
                raise SystemExit(f"workload job {job_id} ended {self._job(job_id)}")
            time.sleep(0.1)
        while self._job(job_id)["state"] not in ("succeeded", "failed"):
            time.sleep(0.2)  # let it finish before the next round starts
        return took

    def _job(self, job_id: int) -> dict:
        return self.http.get(f"/api/v1/jobs/{job_id}", headers=self.pi).json()

    def close(self) -> None:
        self.server.should_exit = True
        self.facility.close()


def _slurm_fleet() -> dict:
    cpus = os.cpu_count() or 1
    return {"sites": [{"name": "here", "country": "IT"}],
            "partitions": [{"name": "cpu", "site": "here", "accelerator": "cpu", "nodes": 1,
                            "accelerators_per_node": cpus, "cpus_per_node": cpus,
                            "memory_gb_per_node": 8}]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=["local", "slurm"], default="local")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    lab = Facility(Path(tempfile.mkdtemp(prefix="workload-start-")) / "home", args.executor)
    baseline, workload = [], []
    try:
        for _ in range(args.rounds):
            baseline.append(lab.baseline())
            workload.append(lab.workload())
    finally:
        lab.close()
    b, w = statistics.median(baseline), statistics.median(workload)
    print(f"executor: {args.executor}, {args.rounds} rounds, medians")
    print(f"plain job, submit -> running (baseline): {b:.2f} s")
    print(f"train workload, submit -> first optimizer step: {w:.2f} s")
    print(f"the workload's own start (difference): {w - b:.2f} s")


if __name__ == "__main__":
    main()
