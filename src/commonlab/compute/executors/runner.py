"""Supervises one local job: `python -m commonlab.compute.executors.runner <workdir>`.

The local executor starts this in a session of its own, so it outlives a restart of
commonlab. It runs the job's command in its own process group, enforces the time limit, and
writes what happened to files in the working directory, which is all the executor reads:

    spec.json     what to run and in which sandbox (written by the executor)
    runner.json   the runner's pid and start time (the job is running)
    stdout.log    the command's standard output, stderr.log its standard error
    result.json   state, exit code, start, end, elapsed seconds (the job is over)

Files are written to a temporary name and renamed, so a reader never sees half of one. The
runner is the facility's process and keeps these files to itself (mode 0600); only the job's
command runs sandboxed, as the job's uid where there is one (`sandbox.py`), writing to the
logs through the descriptors it is given and to `work/`, the one folder it owns.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["main", "write_json"]

# How long a process group gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 5.0


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically; readable by this user only (a spec holds the job's token)."""
    tmp = path.with_suffix(".tmp")
    with open_private(tmp, "w", os.O_TRUNC) as fh:
        fh.write(json.dumps(data))
    os.replace(tmp, path)


def open_private(path: Path, mode: str, flags: int = os.O_APPEND) -> Any:
    """Open `path` for writing, created readable by this user only, never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | flags, 0o600)
    return os.fdopen(fd, mode)


def _end_everything_of(uid: int) -> None:
    """SIGKILL every process of the job's uid: what escaped its process group (a daemon it
    forked with setsid) must not outlive the job."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only signals and exits
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _stop_group(pgid: int, process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after the grace period."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run(workdir: Path) -> int:
    spec = json.loads((workdir / "spec.json").read_text())
    cancelled = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: cancelled.set())
    signal.signal(signal.SIGINT, lambda *_: cancelled.set())
    started = time.monotonic()
    started_at = _now()
    write_json(workdir / "runner.json", {"pid": os.getpid(), "started_at": started_at})
    work = workdir / "work"
    uid = spec["uid"]
    # The facility's own `commonlab` (beside this Python) comes first, so that a job can
    # push what it made with the CLI of the facility that runs it.
    path = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
    )
    env = {"PATH": path, "HOME": str(work), **spec["env"]}
    with (
        open_private(workdir / "stdout.log", "ab") as out,
        open_private(workdir / "stderr.log", "ab") as err,
    ):
        process = subprocess.Popen(
            [*spec["sandbox"], "/bin/sh", "-c", spec["command"]],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            process_group=0,
        )
        deadline = started + spec["time_limit_seconds"]
        state = None
        while state is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)
            if process.returncode is not None:
                state = "succeeded" if process.returncode == 0 else "failed"
            elif cancelled.is_set():
                _stop_group(process.pid, process)
                state = "cancelled"
            elif time.monotonic() >= deadline:
                _stop_group(process.pid, process)
                state = "timed_out"
        # Children the command left behind in its group go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    if uid is not None:
        _end_everything_of(uid)
        # Its outputs stay, out of reach of whichever job gets this uid next.
        os.chown(work, os.getuid(), os.getgid())
        os.chmod(work, 0o700)
    write_json(
        workdir / "result.json",
        {
            "state": state,
            "exit_code": process.returncode,
            "started_at": started_at,
            "ended_at": _now(),
            "elapsed_seconds": max(1, round(time.monotonic() - started)),
        },
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m commonlab.compute.executors.runner <workdir>", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
