"""The one small interface every executor implements, and what passes across it.

An executor runs what commonlab admitted and reports what happened; it never touches the
database. The job controller (`job_controller.py`) turns its reports into transitions and
charges through the compute service. `ExecutorKind` is what the facility asks of an executor
before any job runs; `registry.py` holds one per name.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from commonlab.compute.executors.sandbox import Isolation
from commonlab.compute.rules import JobState
from commonlab.config import Settings
from commonlab.errors import CommonlabError

if TYPE_CHECKING:
    from commonlab.compute.executors.slurm.accounts import Sacctmgr

__all__ = [
    "CARRIED",
    "Executor",
    "ExecutorKind",
    "ExecutorRefused",
    "ExecutorUnavailable",
    "Handoff",
    "Observed",
    "Tracked",
    "carry_checkpoints",
]

# What a resubmitted job finds of its predecessor's work folder: this folder, nothing else.
CARRIED = "checkpoints"


class ExecutorUnavailable(CommonlabError):
    """The executor did not answer (Slurm's daemons down): try again later, nothing changes."""

    status = 503
    title = "Executor unavailable"
    slug = "executor-unavailable"


class ExecutorRefused(Exception):
    """The executor answered and will not take the job (e.g. Slurm: invalid account)."""


@dataclass(frozen=True)
class Handoff:
    """Everything an executor needs to run one job."""

    job_id: int
    name: str  # unique per facility and job: how the executor's side is found again
    command: str
    env: dict[str, str]
    workdir: Path
    partition: str
    account: str
    run_as: str | None
    accelerator: str
    accelerators: int
    cpus: int
    memory_gb: int
    time_limit_minutes: int
    level: int  # its containment level: an executor that can't contain it refuses it
    # Nodes it runs on, one task each; accelerators, cpus and memory_gb are then each node's.
    nodes: int = 1
    # The `checkpoints/` folder the job it resubmits left, copied into its work folder before
    # it starts (`carry_checkpoints`), so a cancelled or timed-out run resumes where it stopped.
    carried: Path | None = None


@dataclass(frozen=True)
class Tracked:
    """A job the executor already has: its id there and its working directory."""

    executor_id: str
    workdir: Path
    accelerator: str = "cpu"  # which allocation counts as its accelerators (GPUs or CPUs)


@dataclass(frozen=True)
class Observed:
    """What the executor says about a job. `elapsed_seconds` and `accelerators` come from
    the executor's own accounting and are what the job is charged for."""

    state: JobState  # QUEUED, RUNNING or a terminal state
    exit_code: int | None = None
    elapsed_seconds: int = 0
    accelerators: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str = ""


class Executor(Protocol):
    name: str
    # How many CPU slots it runs at once (local), or None when the executor queues itself.
    slots: int | None
    # Each job runs as a Unix user no other running job has, which the job controller picks
    # from the project's `slurm_user` slots (`Handoff.run_as`); False: the executor keeps
    # jobs apart itself (the local sandbox).
    run_as_users: bool

    @property
    def accounts(self) -> Sacctmgr | None:
        """The account tree it brings (Slurm's), which governance's accounts and the share
        controller steer (`compute/accounts.py`); None: it has none to steer."""
        ...

    def submit(self, handoff: Handoff) -> str:
        """Start or enqueue the job; returns its id in the executor."""
        ...

    def find(self, handoff: Handoff) -> str | None:
        """The executor's id for a job handed over before a crash, or None if it never arrived."""
        ...

    def observe(self, jobs: Sequence[Tracked]) -> dict[str, Observed]:
        """The state of each job, by executor id; a job the executor lost is reported FAILED."""
        ...

    def cancel(self, job: Tracked) -> None:
        """Stop the job (its whole process tree); a job already finished is not an error."""
        ...


@dataclass(frozen=True)
class ExecutorKind:
    """What the facility asks of an executor by its name, before any job runs."""

    name: str
    # The executor the settings describe (the local one with the sandbox chosen now).
    make: Callable[[Settings], Executor]
    # The machine commonlab runs on is the whole fleet: one `local` partition made at start.
    local_fleet: bool
    # Whether a job's own user reaches its folder by path, given the local sandbox's
    # isolation: then the folders above the jobs' must let others pass through.
    reached_by_path: Callable[[Isolation], bool]
    # The start-up line saying how jobs are kept from the facility, and whether it warns.
    describe_isolation: Callable[[Settings, Isolation], tuple[str, bool]]
    # The most nodes it runs one job on (admission refuses more); None: as many as the
    # partition has.
    max_nodes: int | None = None


def carry_checkpoints(handoff: Handoff, work: Path, *, uid: int | None, gid: int | None) -> int:
    """Copy `handoff.carried` (a predecessor's `checkpoints/`) into `work`, owned by the job's
    uid where it has one; the number of files copied.

    The folder was written by untrusted code, and the facility copies it with its own rights:
    only regular files and folders are copied, never through a link (a link to the facility's
    keys stays behind), and a folder reached through a link is not entered. The predecessor
    has ended and everything it ran was stopped, so the tree no longer changes."""
    source = handoff.carried
    if source is None or not _is_real_dir(source):
        return 0
    target = work / CARRIED
    copied = 0
    for folder, dirs, files in os.walk(source, followlinks=False):
        here = Path(folder)
        into = target / here.relative_to(source)
        into.mkdir(mode=0o700, exist_ok=True)
        _own(into, uid, gid)
        dirs[:] = [d for d in dirs if _is_real_dir(here / d)]
        for name in files:
            try:
                fd = os.open(here / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # a link, or gone: not carried
            with os.fdopen(fd, "rb") as src:
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    continue  # a fifo or a device: not carried
                with open(into / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            _own(into / name, uid, gid)
            copied += 1
    return copied


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _own(path: Path, uid: int | None, gid: int | None) -> None:
    if uid is not None:
        os.chown(path, uid, gid if gid is not None else uid)
