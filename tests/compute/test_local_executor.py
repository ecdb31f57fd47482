"""The local executor on its own: a job's whole process tree runs in a working directory of
its own, its time limit is enforced, cancel kills the whole group, and a runner that dies
without a result is reported lost. Real subprocesses, no mocks, in every sandbox this machine
can give (tests/security/test_isolation.py tries to break out of them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from commonlab.compute.executors.base import ExecutorRefused, Handoff, Tracked
from commonlab.compute.executors.local import LocalExecutor
from commonlab.compute.executors.runner import write_json
from commonlab.compute.executors.sandbox import Isolation, Sandbox, bwrap_problem
from commonlab.compute.rules import TERMINAL, JobState
from tests.security.isolation_helpers import running, unique_sleep


def isolations_here() -> list[Isolation]:
    """Every isolation that runs jobs on this machine: as root a uid of its own with and
    without bubblewrap; otherwise bubblewrap if it works, and none (the laptop mode)."""
    if os.geteuid() == 0:
        return [Isolation.UID] + ([] if bwrap_problem() else [Isolation.BWRAP_UID])
    return [Isolation.NONE] + ([] if bwrap_problem() else [Isolation.BWRAP])


@pytest.fixture(params=isolations_here(), ids=str)
def executor(request) -> LocalExecutor:
    return LocalExecutor(slots=2, sandbox=Sandbox(request.param))


def handoff(
    tmp_path: Path, command: str, *, limit_minutes: int = 5, job_id: int = 1, level: int = 1
) -> Handoff:
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
        level=level,
    )


def wait_for(executor: LocalExecutor, job: Tracked, states: set[JobState], timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        seen = executor.observe([job])[job.executor_id]
        if seen.state in states:
            return seen
        assert time.monotonic() < deadline, f"still {seen.state}"
        time.sleep(0.05)


def test_a_job_runs_in_its_own_directory_with_its_environment(tmp_path, executor):
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
    (workdir / "work").mkdir(parents=True)
    sleeper = unique_sleep()
    command = f"{sleeper} & {sleeper}"
    write_json(
        workdir / "spec.json",
        {"name": "t", "command": command, "env": {}, "time_limit_seconds": 2, "sandbox": []}
        | {"uid": None},
    )
    subprocess.run(
        [sys.executable, "-m", "commonlab.compute.executors.runner", str(workdir)],
        check=True,
        timeout=60,
    )
    result = json.loads((workdir / "result.json").read_text())
    assert result["state"] == "timed_out" and result["elapsed_seconds"] >= 2
    assert not running(sleeper), "the background child must die with its job"


def test_cancel_stops_the_job_and_its_children(tmp_path, executor):
    # A pid inside the job's pid namespace means nothing outside: find the children by a
    # command line no other process has.
    sleeper = unique_sleep()
    h = handoff(tmp_path, f"{sleeper} & {sleeper}")
    job = Tracked(executor.submit(h), h.workdir)
    wait_for(executor, job, {JobState.RUNNING})
    deadline = time.monotonic() + 60
    while len(running(sleeper)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    executor.cancel(job)
    done = wait_for(executor, job, set(TERMINAL))
    assert done.state == JobState.CANCELLED
    assert not running(sleeper)
    executor.cancel(job)  # cancelling a finished job is not an error


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid of its own per job needs root")
@pytest.mark.parametrize("isolation", [Isolation.UID, Isolation.BWRAP_UID], ids=str)
def test_a_job_runs_as_a_uid_of_its_own_and_nothing_of_it_outlives_it(tmp_path, isolation):
    """Never root, never the facility's uid, no groups, no capabilities; a daemon it starts
    in a session of its own (out of its process group) is ended with it; its files are the
    facility's afterwards, so the next job given the same uid can't read them."""
    if isolation is Isolation.BWRAP_UID and bwrap_problem():
        if os.environ.get("CI", "").lower() == "true":  # scripts/test installs it: CI has it
            pytest.fail(f"CI=true but bubblewrap does not work here: {bwrap_problem()}")
        pytest.skip(f"bubblewrap does not work here: {bwrap_problem()}")
    sandbox = Sandbox(isolation)
    executor = LocalExecutor(slots=2, sandbox=sandbox)
    daemon = unique_sleep()
    h = handoff(
        tmp_path,
        f"id -u; id -G; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; "
        f"setsid {daemon} </dev/null >/dev/null 2>&1 & echo out > made",
    )
    uid = sandbox.job_uid(h.workdir, h.job_id)
    job = Tracked(executor.submit(h), h.workdir)
    assert wait_for(executor, job, set(TERMINAL)).state == JobState.SUCCEEDED
    lines = (h.workdir / "stdout.log").read_text().splitlines()
    assert lines[:2] == [str(uid), str(uid)] and uid not in (0, os.geteuid())
    assert all(line.split()[1] == "0000000000000000" for line in lines[2:5]), lines
    assert not running(daemon)
    work = h.workdir / "work"
    assert (work.stat().st_uid, work.stat().st_mode & 0o777) == (os.geteuid(), 0o700)
    assert (work / "made").stat().st_uid == uid


def test_the_facility_keeps_its_files_in_a_job_folder_to_itself(tmp_path, executor):
    h = handoff(tmp_path, "echo out; echo err >&2")
    job = Tracked(executor.submit(h), h.workdir)
    wait_for(executor, job, set(TERMINAL))
    for name in ("spec.json", "runner.json", "result.json", "stdout.log", "stderr.log"):
        path = h.workdir / name
        assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (os.geteuid(), 0o600), name
    assert h.workdir.stat().st_mode & 0o077 in (0, 0o011)  # at most passed through


def test_without_a_sandbox_only_cl1_work_runs_and_never_as_root(tmp_path):
    """Laptop mode: a CL-2 job is refused before anything runs or is written; CL-1 runs as
    the facility's user, unless that is root: a job never runs as root."""
    laptop = LocalExecutor(slots=2, sandbox=Sandbox(Isolation.NONE))
    with pytest.raises(ExecutorRefused, match="CL-2 work needs an isolated job"):
        laptop.submit(handoff(tmp_path, "touch ran", level=2))
    assert not (tmp_path / "1").exists()
    h = handoff(tmp_path, "id -u", job_id=2)
    if os.geteuid() == 0:
        with pytest.raises(ExecutorRefused, match="jobs never run as root"):
            laptop.submit(h)
        assert not h.workdir.exists()
        return
    job = Tracked(laptop.submit(h), h.workdir)
    assert wait_for(laptop, job, set(TERMINAL)).state == JobState.SUCCEEDED
    assert (h.workdir / "stdout.log").read_text() == f"{os.geteuid()}\n"


def test_a_runner_that_dies_without_a_result_is_lost(tmp_path, executor):
    sleeper = unique_sleep()
    h = handoff(tmp_path, sleeper)
    job = Tracked(executor.submit(h), h.workdir)
    wait_for(executor, job, {JobState.RUNNING})
    os.kill(int(job.executor_id), 9)
    done = wait_for(executor, job, set(TERMINAL))
    assert done.state == JobState.FAILED and "lost" in done.reason
    for pid in running(sleeper):  # without a pid namespace the orphan lives on
        os.kill(pid, 9)


def test_a_job_that_never_arrived_is_not_found(tmp_path):
    assert LocalExecutor().find(handoff(tmp_path, "true")) is None
