"""How a local job is kept from the facility: a job is untrusted code, so it runs with nothing
of the facility's home, keys, database or other jobs within its reach.

Chosen once at start (setting `sandbox`), from what this machine allows:

    bwrap+uid  root and a working bubblewrap: a mount namespace where only the system, the
               Python that runs `commonlab` and the job's own work folder exist, a pid
               namespace of its own, and a uid of its own (never root, never the facility's)
    uid        root without bubblewrap: a uid of its own, no supplementary groups, no new
               privileges; the facility's files are kept from it by their modes
    bwrap      not root, a working bubblewrap: the namespaces as above, as the facility's uid
               mapped into a user namespace of the job's own
    none       neither: the job runs as the facility's own user and could read everything it
               can, so the local executor takes only CL-1 work (a single-user laptop)

A job's uid is `job_uid_base + (a hash of the jobs folder + job id) % job_uid_count`, like
systemd's DynamicUser: no passwd entry, distinct for the jobs of one facility, and unlikely to
meet another facility's on the same machine.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import commonlab
from commonlab.config import Settings
from commonlab.errors import ConfigError

__all__ = ["Isolation", "JobSandbox", "Sandbox"]

DEFAULT_UID_BASE = 2_000_000_000  # setting job_uid_base

# The system a job may see, read-only (each where it exists; a symlink stays a symlink).
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


class Isolation(enum.StrEnum):
    BWRAP_UID = "bwrap+uid"
    UID = "uid"
    BWRAP = "bwrap"
    NONE = "none"

    @property
    def isolates(self) -> bool:
        return self is not Isolation.NONE

    @property
    def own_uid(self) -> bool:
        return self in (Isolation.BWRAP_UID, Isolation.UID)

    @property
    def namespaced(self) -> bool:
        return self in (Isolation.BWRAP_UID, Isolation.BWRAP)

    def describe(self) -> str:
        """One line for the start-up message."""
        return {
            Isolation.BWRAP_UID: "jobs run sandboxed (bubblewrap, without the facility's home) "
            "as a uid of their own",
            Isolation.UID: "jobs run as a uid of their own (no bubblewrap: the facility's home "
            "is kept from them by its modes)",
            Isolation.BWRAP: "jobs run sandboxed (bubblewrap, without the facility's home)",
            Isolation.NONE: "jobs are NOT isolated (no root, no working bubblewrap): a job "
            "runs as you and can read the facility's home, so only CL-1 work runs here "
            "(single-user laptop mode)",
        }[self]


@dataclass(frozen=True)
class JobSandbox:
    """What the runner needs to start one job: the argv put before `/bin/sh -c command`,
    and the uid the job runs as (None: the facility's own)."""

    prefix: list[str]
    uid: int | None
    work: Path
    as_root: bool  # never started: a job never runs as root


@dataclass(frozen=True)
class Sandbox:
    isolation: Isolation
    uid_base: int = DEFAULT_UID_BASE
    uid_count: int = 1_000_000
    # Paths a job must never see even where they lie under something it is shown.
    hidden: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandbox:
        """The sandbox the settings ask for, refused at start if this machine can't give it."""
        return cls(
            isolation=choose(settings.sandbox),
            uid_base=settings.job_uid_base,
            uid_count=settings.job_uid_count,
            hidden=_sensitive_paths(settings),
        )

    def job_uid(self, workdir: Path, job_id: int) -> int | None:
        if not self.isolation.own_uid:
            return None
        jobs = hashlib.sha256(str(workdir.resolve().parent).encode()).digest()
        return self.uid_base + (int.from_bytes(jobs[:8]) + job_id) % self.uid_count

    def for_job(self, workdir: Path, job_id: int) -> JobSandbox:
        """The sandbox of job `job_id`, whose folder is `workdir` (it works in `work/`)."""
        work = workdir / "work"
        uid = self.job_uid(workdir, job_id)
        prefix: list[str] = []
        if self.isolation.namespaced:
            prefix += _bwrap_args(work, hidden=self.hidden)
        if uid is not None:
            prefix += _drop_to(uid)
        runs_as = os.geteuid() if uid is None else uid
        return JobSandbox(prefix=prefix, uid=uid, work=work, as_root=runs_as == 0)


def choose(wanted: str) -> Isolation:
    """The isolation `wanted` ("auto" or a mode) resolves to here; ConfigError if this
    machine cannot give the mode asked for."""
    root = os.geteuid() == 0
    if wanted == "none":
        return Isolation.NONE
    if wanted == "uid":
        if not root:
            raise ConfigError("COMMONLAB_SANDBOX='uid': a uid of its own per job needs root")
        _need_setpriv()
        return Isolation.UID
    problem = bwrap_problem()
    if wanted == "bwrap":
        if problem:
            raise ConfigError(f"COMMONLAB_SANDBOX='bwrap': bubblewrap does not work: {problem}")
        return Isolation.BWRAP_UID if root else Isolation.BWRAP
    if root:
        _need_setpriv()
        return Isolation.UID if problem else Isolation.BWRAP_UID
    return Isolation.NONE if problem else Isolation.BWRAP


@functools.cache
def bwrap_problem() -> str:
    """Why bubblewrap can't sandbox a job here ("" when it can): it runs a job's sandbox for
    real, dropping to a uid when root, because a container may forbid namespaces."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory() as work:
        argv = _bwrap_args(Path(work), hidden=())
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                return "setpriv is not installed"
            argv += _drop_to(DEFAULT_UID_BASE)
        try:
            done = subprocess.run(
                [*argv, "/bin/sh", "-c", "true"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip()[:300] or f"exit {done.returncode}"
    return ""


def _need_setpriv() -> None:
    if shutil.which("setpriv") is None:
        raise ConfigError("jobs must not run as root: install setpriv (Debian: util-linux)")


def _drop_to(uid: int) -> list[str]:
    """Become `uid` with no groups, no capabilities and no way to gain privileges again."""
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _bwrap_args(work: Path, *, hidden: tuple[Path, ...]) -> list[str]:
    """A new mount, pid, ipc and uts namespace where the job sees the system read-only, the
    Python that runs the facility's `commonlab` read-only, a fresh /tmp, and its work
    folder; the network stays shared so the job can reach the facility's API."""
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent"]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    for name in _SYSTEM:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp"]
    shown = _python_roots()
    for root in shown:
        args += [*_passage_to(root), "--ro-bind", str(root), str(root)]
    for path in hidden:
        if not any(path.is_relative_to(root) for root in (*shown, *map(Path, _SYSTEM))):
            continue  # not shown to the job in the first place
        if path.is_dir():
            args += ["--tmpfs", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    args += [*_passage_to(work), "--bind", str(work), str(work), "--chdir", str(work)]
    return args


def _passage_to(path: Path) -> list[str]:
    """Folders the job may pass through to reach `path` (bubblewrap would make them 0700,
    closed to a job's uid); only the folders, nothing else of what they hold outside."""
    args: list[str] = []
    for folder in reversed(path.parents[:-1]):
        made = (*_SYSTEM, "/proc", "/dev")
        if folder != Path("/tmp") and not any(folder.is_relative_to(m) for m in made):
            args += ["--perms", "0711", "--dir", str(folder)]
    return args


@functools.cache
def _python_roots() -> tuple[Path, ...]:
    """What a job needs to run this Python and its `commonlab`: the virtual environment, the
    installation it was made from, and the source an editable install points at."""
    wanted = {
        Path(p).resolve()
        for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    }
    wanted.add(Path(commonlab.__file__).resolve().parent.parent)
    wanted.add(Path(sys.executable).resolve().parent.parent)
    roots = sorted(p for p in wanted if not p.is_relative_to("/usr"))
    return tuple(p for p in roots if not any(p != q and p.is_relative_to(q) for q in roots))


def closed_to_jobs(paths: tuple[Path, ...] | None = None) -> Path | None:
    """In `uid` mode nothing is mounted for a job: the first folder on the way to one of
    `paths` (default: this Python and its `commonlab`) that other users can't pass (a venv
    made from a Python under /root, a facility home under a 0700 folder), or None. Said at
    start, since a job calling `commonlab`, or reaching its folder by its path, would fail."""
    for root in _python_roots() if paths is None else paths:
        for folder in (*reversed(root.parents), root):
            if not folder.stat().st_mode & 0o001:
                return folder
    return None


def _sensitive_paths(settings: Settings) -> tuple[Path, ...]:
    paths = [settings.home, settings.jobs_path, settings.key_path]
    if config := os.environ.get("COMMONLAB_CONFIG"):
        paths.append(Path(config))  # it may hold the database's password
    if settings.db_url.startswith("sqlite:///"):
        db = Path(settings.db_url.removeprefix("sqlite:///"))
        paths += [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return tuple(p.resolve() for p in paths)


def lock_job_folders(jobs: Path, *, traverse: bool) -> None:
    """Bring the folders of jobs already there to what `LocalExecutor` makes today (a
    facility that ran before this rule left them readable by others): a job's folder is
    0700 (0711 to pass through), the facility's files in it 0600, a finished job's `work/`
    the facility's and 0700; a folder a run-as user owns (Slurm) is 0700."""
    if not jobs.is_dir():
        return
    me = os.geteuid()
    for folder in jobs.iterdir():
        if folder.is_symlink() or not folder.is_dir():
            continue
        if folder.stat().st_uid != me:
            os.chmod(folder, 0o700)
            continue
        os.chmod(folder, 0o711 if traverse else 0o700)
        for entry in folder.iterdir():
            if entry.is_symlink():
                continue
            if entry.name != "work":
                os.chmod(entry, 0o600 if entry.is_file() else 0o700)
            elif (folder / "result.json").exists():
                if entry.stat().st_uid != me and me == 0:
                    os.chown(entry, me, os.getegid())
                os.chmod(entry, 0o700)
