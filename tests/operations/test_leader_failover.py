"""Three real `commonlab up` processes on one database and one home act as one facility (as
three hosts would); the leader is SIGKILLed in the middle of a burst of job submissions.
Another takes over, and: no accepted job or entry is lost, none is sequenced twice, every
checkpoint extends the one before, no job is handed to the executor twice, and no hold on
the ledger is closed twice."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from commonlab.allocation.models import Charge
from commonlab.app import create_app
from commonlab.compute.models import Job, JobTransition
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.operations.leader import leader_status
from commonlab.record.merkle import verify_consistency
from commonlab.record.models import Checkpoint, Entry, Head
from commonlab.record.store import ProofReader
from commonlab.record.verify import verify_store
from tests.cli.conftest import free_port
from tests.compute.helpers import award_project
from tests.helpers import auth

WORKERS = (2, 1)  # `up --workers 2` on one port, `up` on another: three processes
JOBS = 36  # submitted in all; the leader dies after a third of them are accepted
ENDED = {"succeeded", "failed", "cancelled", "refused", "timed_out"}


def start_server(settings, port: int, log: Path, *, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COMMONLAB_HOME": str(settings.home),
        "COMMONLAB_DATABASE_URL": settings.database_url,
        "COMMONLAB_COMPUTE_POLL_MS": "100",
        # Entries appended by a follower wait for the leader's tick, not its wake.
        "COMMONLAB_SEQUENCER_INTERVAL_MS": "100",
        "COMMONLAB_LOCAL_SLOTS": "8",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "commonlab.cli",
                "up",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until_serving(servers: dict[int, subprocess.Popen[bytes]], logs: dict[int, Path]):
    deadline = time.monotonic() + 90
    for port, server in servers.items():
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, logs[port].read_text()
            assert time.monotonic() < deadline, logs[port].read_text()
            time.sleep(0.1)


def descendants(pid: int) -> set[int]:
    """The process and every process under it (uvicorn's workers under `up --workers`)."""
    found = {pid}
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return found
    for child in children:
        found |= descendants(int(child))
    return found


def holder_pid(facility) -> int | None:
    """The pid of the process holding the lease (its name ends with "pid <n>")."""
    status = leader_status(facility)
    return int(status.holder.rsplit(" ", 1)[1]) if status.held and status.holder else None


def wait_for(check, what: str, *, within: float = 60.0):
    """A bound on liveness (the machine may be loaded), not a timing claim."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_killing_the_leader_mid_burst_loses_nothing_and_doubles_nothing(settings, tmp_path):
    facility = open_facility(settings)
    with facility.db.session() as session:
        operator = auth(bootstrap_operator(session) or "")
    with TestClient(create_app(facility, run_sequencer=False)) as client:
        project = award_project(client, operator)

    # Two "hosts" on ports of their own: one runs two workers, the other one process.
    ports = [free_port() for _ in WORKERS]
    logs = {port: tmp_path / f"server-{port}.log" for port in ports}
    servers = {
        port: start_server(settings, port, logs[port], workers=workers)
        for port, workers in zip(ports, WORKERS, strict=True)
    }
    try:
        wait_until_serving(servers, logs)

        def serving_pids() -> dict[int, int]:
            return {
                pid: port for port, server in servers.items() for pid in descendants(server.pid)
            }

        first = wait_for(
            lambda: (pid := holder_pid(facility)) in serving_pids() and pid, "a leader"
        )
        pids = serving_pids()
        dead_port = pids[first]
        # Killing a worker of the two leaves its port served by the other.
        port_dies = first == servers[dead_port].pid

        accepted: list[int] = []
        lock = threading.Lock()
        killed = threading.Event()
        took_over: list[float] = []

        def submit(worker: int) -> None:
            api = httpx.Client(timeout=60)
            try:
                for n in range(worker, JOBS, 4):
                    live = [
                        p for p in ports if not (killed.is_set() and port_dies and p == dead_port)
                    ]
                    port = live[n % len(live)]
                    try:
                        response = api.post(
                            f"http://127.0.0.1:{port}/api/v1/jobs",
                            json={
                                "project": project.name,
                                "command": f"echo ran {n}",
                                "accelerator": "cpu",
                                "time_limit_minutes": 1,
                            },
                            headers=project.pi_auth,
                        )
                    except httpx.TransportError:
                        continue  # sent to the leader as it died: not accepted
                    assert response.status_code == 201, response.text
                    job_id = response.json()["id"]
                    if n % 6 == 0:  # some are cancelled: their holds are released
                        api.post(
                            f"http://127.0.0.1:{port}/api/v1/jobs/{job_id}/cancel",
                            headers=project.pi_auth,
                        )
                    with lock:
                        accepted.append(job_id)
            finally:
                api.close()

        def kill_the_leader() -> None:
            wait_for(lambda: len(accepted) >= JOBS // 3, "a third of the burst accepted")
            os.kill(first, signal.SIGKILL)
            killed_at = time.monotonic()
            killed.set()
            successor = wait_for(
                lambda: (pid := holder_pid(facility)) not in (None, first) and pid,
                "a new leader",
                within=30,
            )
            took_over.append(time.monotonic() - killed_at)
            assert successor in serving_pids()

        threads = [threading.Thread(target=submit, args=(w,)) for w in range(4)]
        threads.append(threading.Thread(target=kill_the_leader))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert took_over, "no process took over from the killed leader"
        print(f"takeover after SIGKILL: {took_over[0]:.2f} s")
        assert len(accepted) >= JOBS // 2

        def all_settled() -> bool:
            with facility.db.session() as session, session.begin():
                states = session.scalars(select(Job.state)).all()
                waiting = session.scalar(select(func.count()).where(Entry.seq.is_(None)))
            return all(state in ENDED for state in states) and waiting == 0

        wait_for(all_settled, "every job ended and every entry sequenced", within=90)
        check_nothing_lost_or_doubled(facility, settings, accepted)
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.terminate()
        for server in servers.values():
            server.wait(timeout=30)
        facility.close()


def check_nothing_lost_or_doubled(facility, settings, accepted: list[int]) -> None:
    with facility.db.session() as session:
        with session.begin():
            jobs = {job.id: job for job in session.scalars(select(Job))}
            # Every accepted job is there, with its admission on the record, sequenced once.
            assert set(accepted) <= set(jobs)
            admitted = Counter(
                session.scalars(
                    select(Entry.subject).where(
                        Entry.type == "compute:job:admitted", Entry.seq.is_not(None)
                    )
                )
            )
            assert all(admitted[f"job/{job_id}"] == 1 for job_id in jobs), admitted
            size = session.get_one(Head, 1).size
            seqs = session.scalars(select(Entry.seq)).all()
            assert sorted(seqs) == list(range(size))  # none lost, none twice, no gap
            # Each job entered each state once: no second "running" from a second handover.
            entered = Counter(session.execute(select(JobTransition.job_id, JobTransition.state)))
            assert all(times == 1 for times in entered.values()), entered
            # Each hold closed once (settled or released), and each job charged once.
            closings = Counter(
                session.scalars(select(Charge.job).where(Charge.kind.in_(("settle", "release"))))
            )
            assert all(closings[job.key] == 1 for job in jobs.values()), closings
            sizes = session.scalars(select(Checkpoint.size).order_by(Checkpoint.size)).all()
            roots = dict(session.execute(select(Checkpoint.size, Checkpoint.root_hash)).all())
        report = verify_store(session, facility.signer_verifier())
        assert report.ok, report.problems
        # Every checkpoint is consistent with the one signed before it: no fork.
        reader = ProofReader()
        signed = [size for size in sizes if size > 0]
        for old, new in itertools.pairwise(signed):
            with session.begin():
                proof = reader.consistency(session, old, new)
            verify_consistency(old, new, proof, roots[old], roots[new])
    # A job run twice would have printed its line twice into its one log.
    for job in jobs.values():
        if job.state == "succeeded":
            out = (settings.jobs_path / str(job.id) / "stdout.log").read_text()
            assert out.count("ran") == 1, (job.id, out)
