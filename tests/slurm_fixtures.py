"""The real single-node Slurm that ./scripts/slurm_up starts, as fixtures for every test package.

Registered once, in tests/conftest.py. Tests that take `slurm_cluster` skip on a laptop where
Slurm is not running, and fail under CI=true. Jobs run as the Unix user `clrunner`, never as
root, in folders under `job_root` (pytest's own tmp folders are 0700 root, which clrunner
cannot enter).

Tests in other xdist workers share the one cluster: they use accounts and job names of their
own (`slurm_account`, `unique_name`), and each holds a shared lock for its duration so that a
test restarting the daemons (an exclusive lock) never pulls them from under another test.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from commonlab.compute.executors.slurm.cli import SlurmCli, SlurmError, SlurmUnavailable

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("COMMONLAB_SLURM_DIR", "/var/tmp/commonlab-slurm"))
PARTITION = "cpu"
RUN_AS = "clrunner"

# This worker's shared lock, held while a test that uses Slurm runs.
_held_lock: IO[str] | None = None


def unique_name(prefix: str) -> str:
    """A Slurm-safe name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    cpus: int
    run_as: str
    uid: int
    gid: int
    job_root: Path
    state_dir: Path

    def fleet(self) -> dict[str, Any]:
        """The fleet document of this cluster: its one CPU partition, at a site in Italy."""
        return {
            "sites": [{"name": "here", "country": "IT"}],
            "partitions": [
                {
                    "name": self.partition,
                    "site": "here",
                    "accelerator": "cpu",
                    "nodes": 1,
                    "accelerators_per_node": self.cpus,
                    "cpus_per_node": self.cpus,
                    "memory_gb_per_node": 8,
                }
            ],
        }

    def job_dir(self, name: str) -> Path:
        """A fresh folder under job_root that the run-as user can write."""
        path = self.job_root / unique_name(name)
        path.mkdir()
        os.chown(path, self.uid, self.gid)
        return path

    @contextmanager
    def alone(self) -> Iterator[None]:
        """The cluster to this test alone: waits for other workers' Slurm tests to finish,
        and holds theirs back until the block ends (a test that fills the node, or restarts
        the daemons)."""
        if _held_lock is not None:
            fcntl.flock(_held_lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if _held_lock is not None:
                fcntl.flock(_held_lock, fcntl.LOCK_SH)

    def restart_daemons(self) -> None:
        """Restart slurmdbd, slurmctld and slurmd (jobs keep running), and wait until Slurm
        answers again. Waits for other workers' Slurm tests to finish first."""
        with self.alone():
            subprocess.run(
                [str(ROOT / "scripts" / "slurm_restart")],
                check=True,
                timeout=180,
                capture_output=True,
            )
            _wait_until_answering(SlurmCli(timeout=10), seconds=60)


def _wait_until_answering(cli: SlurmCli, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            cli.ping()
            return
        except SlurmUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: run ./scripts/slurm_up (as root)")
    pytest.skip(f"{reason}: run ./scripts/slurm_up (as root) for the slurm tests")


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The running test cluster; skips (fails under CI=true) when there is none."""
    if shutil.which("sinfo") is None:
        _unavailable("Slurm is not installed")
    if os.getuid() != 0:
        _unavailable("the slurm tests submit jobs as clrunner, which needs root")
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        _unavailable(f"there is no Unix user {RUN_AS}")
    try:
        SlurmCli(timeout=10).ping()
    except SlurmUnavailable as exc:
        _unavailable(f"Slurm is not answering ({exc.message})")
    job_root = STATE_DIR / "jobs"
    if not job_root.is_dir():
        _unavailable(f"{job_root} is missing")
    return SlurmCluster(
        partition=PARTITION,
        cpus=os.cpu_count() or 1,
        run_as=RUN_AS,
        uid=user.pw_uid,
        gid=user.pw_gid,
        job_root=job_root,
        state_dir=STATE_DIR,
    )


@pytest.fixture(autouse=True)
def _slurm_shared_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hold the cluster's shared lock while a test that uses Slurm runs."""
    global _held_lock
    if "slurm_cluster" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("slurm_cluster")
    with open(STATE_DIR / "tests.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        _held_lock = lock
        try:
            yield
        finally:
            _held_lock = None


@pytest.fixture
def slurm_account(slurm_cluster: SlurmCluster) -> Iterator[str]:
    """An account of this test's own, under root, that the run-as user may submit to."""
    cli = SlurmCli()
    name = unique_name("t")
    cli.sacctmgr("-i", "add", "account", name, "parent=root", "description=commonlab test")
    cli.sacctmgr("-i", "add", "user", slurm_cluster.run_as, f"account={name}")
    yield name
    try:
        subprocess.run(["scancel", f"--account={name}"], timeout=30, check=False)
        user = slurm_cluster.run_as
        cli.sacctmgr("-i", "remove", "user", "where", f"name={user}", f"account={name}")
        cli.sacctmgr("-i", "remove", "account", "where", f"name={name}")
    except SlurmError:
        pass  # a job still finishing keeps the account; it does no harm
