"""Killing commonlab mid-job and starting it again loses nothing and charges once: a real
`commonlab up` process is SIGKILLed while its job runs (the job's runner lives on in its own
session), then started again on the same home and database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from commonlab.app import create_app
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from tests.cli.conftest import free_port
from tests.compute.helpers import award_project
from tests.helpers import auth, http_client


def start(settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COMMONLAB_HOME": str(settings.home),
        "COMMONLAB_DATABASE_URL": settings.database_url,
        "COMMONLAB_COMPUTE_POLL_MS": "100",
    }
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "commonlab.cli", "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                return server
        except httpx.ConnectError:
            pass
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def wait_state(api: httpx.Client, job_id: int, headers, states, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


@pytest.mark.slow
def test_killing_commonlab_mid_job_loses_nothing_and_charges_once(settings, tmp_path):
    facility = open_facility(settings)
    with facility.db.session() as session:
        operator = auth(bootstrap_operator(session) or "")
    with TestClient(create_app(facility, run_sequencer=False)) as client:
        project = award_project(client, operator)
    facility.close()

    port = free_port()
    log = tmp_path / "server.log"
    server = start(settings, port, log)
    try:
        api = http_client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        job = api.post(
            "/api/v1/jobs",
            json={
                "project": project.name,
                "command": "echo before; sleep 4; echo after",
                "accelerator": "cpu",
                "time_limit_minutes": 2,
            },
            headers=project.pi_auth,
        ).json()
        wait_state(api, job["id"], project.pi_auth, {"running"})
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)

        server = start(settings, port, log)
        done = wait_state(api, job["id"], project.pi_auth, {"succeeded", "failed"})
        assert done["state"] == "succeeded", (done, log.read_text())
        assert [t["state"] for t in done["transitions"]] == [
            "admitted",
            "queued",
            "running",
            "succeeded",
        ]
        out = api.get(f"/api/v1/jobs/{job['id']}/logs", headers=project.pi_auth).json()
        assert out["text"] == "before\nafter\n"
        # Charged once, for the time it really ran (about 4 s: one ledger unit of 36 s).
        assert Decimal(done["charged_hours"]) == Decimal("0.01")
        allocation = api.get(f"/api/v1/allocations/{project.allocation_id}", headers=operator)
        assert Decimal(allocation.json()["used"]["cpu"]) == Decimal("0.01")
        settled = api.get(
            "/api/v1/record/entries",
            params={"type": "allocation:ledger:settled", "limit": 100},
        ).json()["items"]
        assert [e["entry"]["data"]["job"] for e in settled] == [f"job/{job['id']}"]
    finally:
        server.terminate()
        server.wait(timeout=30)
