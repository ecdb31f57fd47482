"""The local executor on its own: a job's whole process tree runs in a working directory of
its own, its time limit is enforced, cancel kills the whole group, and a runner that dies
without a result is reported lost. Real subprocesses, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from commonlab.compute.executor import Handoff, Tracked
from commonlab.compute.local import LocalExecutor
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.compute.runner import write_json


def handoff(tmp_path: Path, command: str, *, limit_minutes: int = 5, job_id: int = 1) -> Handoff:
    return Handoff(
        job_id=job_id,
        name=f"cl-test-{job_id}",
        command=command,
        env={"GREETING": "hi"},
        workdir=tmp_path / str(job_id),
        partition="local",
        account="p-test",
        run_as=None,
        accelerator="cpu",
        accelerators=1,
        cpus=1,
        memory_gb=1,
        time_limit_minutes=limit_minutes,
    )


def wait_for(executor: LocalExecutor, job: Tracked, states: set[JobState], timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        seen = executor.observe([job])[job.executor_id]
        if seen.state in states:
            return seen
        assert time.monotonic() < deadline, f"still {seen.state}"
        time.sleep(0.05)


def test_a_job_runs_in_its_own_directory_with_its_environment(tmp_path):
    executor = LocalExecutor(slots=2)
    h = handoff(tmp_path, 'echo "$GREETING from $(pwd)"; touch made-here')
    job = Tracked(executor.submit(h), h.workdir)
    done = wait_for(executor, job, set(TERMINAL))
    assert done.state == JobState.SUCCEEDED and done.exit_code == 0
    assert done.elapsed_seconds >= 1 and done.started_at and done.ended_at
    assert (h.workdir / "stdout.log").read_text() == f"hi from {h.workdir / 'work'}\n"
    assert (h.workdir / "work" / "made-here").exists()
    assert executor.find(h) == job.executor_id


def test_the_time_limit_kills_the_whole_group(tmp_path):
    # The smallest limit a job may ask for is a minute; the runner takes seconds, so run it
    # directly on a spec with a two-second limit.
    workdir = tmp_path / "1"
    workdir.mkdir()
    command = "sleep 300 & echo $! > child.pid; sleep 300"
    write_json(
        workdir / "spec.json",
        {"name": "t", "command": command, "env": {}, "time_limit_seconds": 2},
    )
    subprocess.run(
        [sys.executable, "-m", "commonlab.compute.runner", str(workdir)], check=True, timeout=60
    )
    result = json.loads((workdir / "result.json").read_text())
    assert result["state"] == "timed_out" and result["elapsed_seconds"] >= 2
    child = int((workdir / "work" / "child.pid").read_text())
    assert not _running(child), "the background child must die with its job"


def test_cancel_stops_the_job_and_its_children(tmp_path):
    executor = LocalExecutor(slots=2)
    h = handoff(tmp_path, "sleep 300 & echo $! > child.pid; sleep 300")
    job = Tracked(executor.submit(h), h.workdir)
    wait_for(executor, job, {JobState.RUNNING})
    deadline = time.monotonic() + 10
    while not (h.workdir / "work" / "child.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int((h.workdir / "work" / "child.pid").read_text())
    executor.cancel(job)
    done = wait_for(executor, job, set(TERMINAL))
    assert done.state == JobState.CANCELLED
    assert not _running(child)
    executor.cancel(job)  # cancelling a finished job is not an error


def test_a_runner_that_dies_without_a_result_is_lost(tmp_path):
    executor = LocalExecutor(slots=2)
    h = handoff(tmp_path, "sleep 300")
    job = Tracked(executor.submit(h), h.workdir)
    wait_for(executor, job, {JobState.RUNNING})
    os.kill(int(job.executor_id), 9)
    done = wait_for(executor, job, set(TERMINAL))
    assert done.state == JobState.FAILED and "lost" in done.reason


def test_a_job_that_never_arrived_is_not_found(tmp_path):
    assert LocalExecutor().find(handoff(tmp_path, "true")) is None


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
