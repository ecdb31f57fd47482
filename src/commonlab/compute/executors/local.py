"""The `local` executor, the embedded default: each job runs under a runner process
(`runner.py`) in a session of its own, one CPU slot per core, in a working directory per job,
its command in the sandbox chosen at start (`sandbox.py`): never as the facility's user where
the machine allows better, and only CL-1 work where it does not.

The executor keeps no state of its own: what a job is doing is read back from the files its
runner writes, so a restart of commonlab finds every job again, finished or not.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from commonlab.compute.executors.base import (
    ExecutorKind,
    ExecutorRefused,
    ExecutorUnavailable,
    Handoff,
    Observed,
    Tracked,
    carry_checkpoints,
)
from commonlab.compute.executors.runner import open_private, write_json
from commonlab.compute.executors.sandbox import (
    Isolation,
    JobSandbox,
    Sandbox,
    choose,
    closed_to_jobs,
)
from commonlab.compute.rules import JobState
from commonlab.config import Settings

__all__ = ["KIND", "LocalExecutor"]


class LocalExecutor:
    name = "local"
    run_as_users = False  # the sandbox gives a job its uid (sandbox.py)
    accounts = None

    def __init__(self, slots: int | None = None, *, sandbox: Sandbox | None = None) -> None:
        self.slots = slots or os.cpu_count() or 1
        self.sandbox = sandbox or Sandbox(choose("auto"))
        # Runners this process started: polled so that finished ones are reaped, not zombies.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def submit(self, handoff: Handoff) -> str:
        if handoff.nodes > 1:
            # Admission refuses it first (KIND.max_nodes); this only guards the executor.
            raise ExecutorRefused(_ONE_NODE)
        job = self.sandbox.for_job(handoff.workdir, handoff.job_id)
        if not self.sandbox.isolation.isolates and handoff.level > 1:
            raise ExecutorRefused(
                f"CL-{handoff.level} work needs an isolated job, and this facility's local "
                "executor runs jobs unisolated (no root, no working bubblewrap: single-user "
                "laptop mode, CL-1 only); run it where jobs are sandboxed"
            )
        if job.as_root:
            raise ExecutorRefused(
                "jobs never run as root, and without a sandbox this one would: set "
                "COMMONLAB_SANDBOX to auto (a uid of its own per job)"
            )
        _prepare(handoff.workdir, job, traverse=self.sandbox.isolation is Isolation.UID)
        lock = _lock_runner(handoff.workdir)
        if lock is None:
            return _starting(handoff.workdir)  # another controller's runner is starting
        try:
            carry_checkpoints(handoff, job.work, uid=job.uid, gid=job.uid)
            write_json(
                handoff.workdir / "spec.json",
                {
                    "name": handoff.name,
                    "command": handoff.command,
                    "env": handoff.env,
                    "time_limit_seconds": handoff.time_limit_minutes * 60,
                    "sandbox": job.prefix,
                    "uid": job.uid,
                },
            )
            with open_private(handoff.workdir / "runner.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", _RUNNER, str(handoff.workdir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    close_fds=True,
                    # The runner inherits the lock and holds it until it ends.
                    pass_fds=(lock,),
                )
        finally:
            os.close(lock)
        self._children[process.pid] = process
        write_json(handoff.workdir / "launched.json", {"pid": process.pid})
        return str(process.pid)

    def find(self, handoff: Handoff) -> str | None:
        # The runner writes runner.json once it runs; launched.json covers the moment before.
        for name in ("runner.json", "launched.json"):
            found = _read(handoff.workdir / name)
            if found is not None:
                return str(found["pid"])
        # A controller that died just after starting the runner left no launched.json, and
        # the runner may not have written runner.json yet: its lock says it is there.
        if not handoff.workdir.is_dir():
            return None
        lock = _lock_runner(handoff.workdir)
        if lock is None:
            return _starting(handoff.workdir)
        os.close(lock)
        return None

    def observe(self, jobs: Sequence[Tracked]) -> dict[str, Observed]:
        for pid, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[pid]
        return {job.executor_id: self._observe(job) for job in jobs}

    def _observe(self, job: Tracked) -> Observed:
        result = _read(job.workdir / "result.json")
        if result is not None:
            return Observed(
                state=JobState(result["state"]),
                exit_code=result["exit_code"],
                elapsed_seconds=int(result["elapsed_seconds"]),
                started_at=datetime.fromisoformat(result["started_at"]),
                ended_at=datetime.fromisoformat(result["ended_at"]),
            )
        runner = _read(job.workdir / "runner.json")
        pid = int(job.executor_id)
        child = self._children.get(pid)
        if (child is not None and child.poll() is None) or _alive(pid, job.workdir):
            if runner is None:
                return Observed(state=JobState.QUEUED, reason="starting")
            return Observed(
                state=JobState.RUNNING, started_at=datetime.fromisoformat(runner["started_at"])
            )
        # Read again: the runner may have finished between the two reads.
        if (job.workdir / "result.json").exists():
            return self._observe(job)
        last = _last_line(job.workdir / "runner.log")
        return Observed(
            state=JobState.FAILED,
            reason="lost: its runner ended without a result"
            + (f" ({last})" if last else " (was the machine restarted?)"),
        )

    def cancel(self, job: Tracked) -> None:
        pid = int(job.executor_id)
        if _alive(pid, job.workdir):
            # The runner stops the job's process group and writes the result itself.
            os.kill(pid, signal.SIGTERM)


_ONE_NODE = (
    "the local executor runs every job on this one machine: ask for one node "
    "(several nodes need a Slurm facility)"
)

# Started as a module of its own, in a session of its own: it outlives commonlab's process.
_RUNNER = "commonlab.compute.executors.runner"


def _prepare(workdir: Path, job: JobSandbox, *, traverse: bool) -> None:
    """The job's folder is the facility's (its spec, logs and results; others may at most pass
    through it to `work/` when the job must reach that by path); `work/` is the job's own."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o711 if traverse else 0o700)
    job.work.mkdir(exist_ok=True)
    if job.uid is not None:
        os.chown(job.work, job.uid, job.uid)
    os.chmod(job.work, 0o700)


def _lock_runner(workdir: Path) -> int | None:
    """Take the job's runner lock (its descriptor), or None while a runner holds it. The
    executor takes it before starting the runner, which inherits it: from before the runner
    exists until it ends, a second runner for the job is never started (leader.py's
    successor, or a restart, looking for a job handed over in that moment)."""
    fd = os.open(workdir / "runner.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _starting(workdir: Path, *, wait_s: float = 10.0) -> str:
    """The pid of a runner that holds the job's lock, once it says so."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for name in ("runner.json", "launched.json"):
            found = _read(workdir / name)
            if found is not None:
                return str(found["pid"])
        time.sleep(0.05)
    raise ExecutorUnavailable(f"{workdir.name}: its runner is starting and has not said so yet")


def _read(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return lines[-1][:200] if lines else ""


def _alive(pid: int, workdir: Path) -> bool:
    """Whether `pid` is still this job's runner (not a recycled pid, not a zombie)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return str(workdir).encode() in cmdline


def _describe_isolation(settings: Settings, isolation: Isolation) -> tuple[str, bool]:
    """Said at every start; a warning when jobs are not isolated."""
    line = f"local jobs: {isolation.describe()}"
    if isolation is Isolation.UID and (closed := closed_to_jobs()):
        line += f"; {closed} is closed to other users, so a job can't run this `commonlab`"
    if isolation is Isolation.UID and (closed := closed_to_jobs((settings.jobs_path,))):
        line += (
            f"; {closed} is closed to other users, so a job can't reach its folder by its "
            "path (its HOME): let others pass it (chmod o+x) or keep the home elsewhere"
        )
    if isolation.isolates:
        return line, False
    if os.geteuid() == 0:
        line += "; as root it refuses every job (a job never runs as root)"
    return line, True


KIND = ExecutorKind(
    name="local",
    make=lambda settings: LocalExecutor(
        settings.local_slots or None, sandbox=Sandbox.from_settings(settings)
    ),
    local_fleet=True,
    # A uid of its own without a mount namespace reaches `work/` through the folders above.
    reached_by_path=lambda isolation: isolation is Isolation.UID,
    describe_isolation=_describe_isolation,
    # This machine is the whole fleet: one node.
    max_nodes=1,
)
