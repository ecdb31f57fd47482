"""Opening a facility: its home directory, database (migrated), record signing key and
session secret, and the first operator. `commonlab up` and the tests both start here.

The home is the facility's alone: at every start it is locked down (keys, database and
objects unreadable by any other user; see `_lock_down`), and the sandbox its local jobs run
in is chosen, so that a job, untrusted code, sees nothing of it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from commonlab import wiring
from commonlab.compute.executors.registry import kind_of
from commonlab.compute.executors.sandbox import Isolation, Sandbox, lock_job_folders
from commonlab.config import Settings
from commonlab.db import Database
from commonlab.errors import ConfigError
from commonlab.migrations import migrate
from commonlab.policy import validate_policy_set
from commonlab.record.note import NoteError, Signer, Verifier, generate_signer
from commonlab.record.sequencer import sequence
from commonlab.record.store import ProofReader
from commonlab.record.witnessed import (
    LogContradictsWitness,
    contradiction,
    forks_on_record,
    latest_cosigned,
    load_witnessed,
    record_fork,
    remember_witnessed,
    witnessed_path,
)

__all__ = ["RUNNING_LOCK", "Facility", "open_facility"]

# Every process that has the facility open holds this file's shared lock: `commonlab
# restore` takes it exclusively, so it never writes under a running facility, and no
# facility starts while a restore writes (operations/backup.py).
RUNNING_LOCK = "facility.lock"


@dataclass
class Facility:
    settings: Settings
    db: Database
    signer: Signer
    session_secret: bytes
    # How local jobs are kept from the facility (chosen at start; compute/executors/sandbox.py).
    isolation: Isolation
    # Tiles only grow, so one cache serves every request of this process. After restoring
    # a database backup, restart the process: its cache may hold tiles the backup lacks.
    proofs: ProofReader = field(default_factory=ProofReader)
    # Forks of the record an operator forced (record/witnessed.py), announced by /health.
    forks: list[dict[str, object]] = field(default_factory=list)
    running_lock: int | None = None  # the file descriptor holding RUNNING_LOCK shared

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def witnessed_path(self) -> Path:
        """Where the latest checkpoint a witness cosigned is remembered, outside the database."""
        return witnessed_path(self.settings.home)

    def signer_verifier(self) -> Verifier:
        return Verifier.from_key(self.signer.verifier_key())

    def sequence_now(self) -> None:
        """Sign what waits into the record now, for a command run beside (or without) the
        server's sequencer thread, such as `commonlab admin recover`."""
        with self.db.session() as session:
            sequence(session, self.signer)

    def close(self) -> None:
        self.db.dispose()
        if self.running_lock is not None:
            os.close(self.running_lock)
            self.running_lock = None


def open_facility(settings: Settings, *, force_fork: bool = False) -> Facility:
    """Everything a running facility needs, created on first start and reused after.

    The record must extend the latest checkpoint a witness cosigned, or the facility refuses
    to start (`_check_record`); `force_fork` starts it anyway and puts the fork on the record."""
    validate_policy_set()
    wiring.connect()
    home = settings.home
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"COMMONLAB_HOME={home}: cannot create it ({exc.strerror})") from None
    isolation = Sandbox.from_settings(settings).isolation
    # What is opened here is released again if the start fails partway (a bad key, a
    # record that contradicts its witness, a home it cannot lock down): a caller that
    # catches the error, `up` retried or a test, is left holding no connection and no lock.
    with contextlib.ExitStack() as opened:
        running = _hold_running_lock(home)
        opened.callback(os.close, running)
        db = Database(settings.db_url)
        opened.callback(db.dispose)
        migrate(db.engine)
        signer = _load_or_create_signer(settings)
        secret = _load_or_create_secret(home / "keys" / "session.key")
        forks = _check_record(db, signer, witnessed_path(home), force_fork=force_fork)
        try:
            _lock_down(settings, passage=kind_of(settings.executor).reached_by_path(isolation))
        except OSError as exc:
            raise ConfigError(
                f"COMMONLAB_HOME={home}: cannot make {exc.filename} private ({exc.strerror}); "
                "run commonlab as the user that owns the home"
            ) from None
        opened.pop_all()
    return Facility(
        settings=settings,
        db=db,
        signer=signer,
        session_secret=secret,
        isolation=isolation,
        forks=forks,
        running_lock=running,
    )


def _hold_running_lock(home: Path) -> int:
    fd = os.open(home / RUNNING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"COMMONLAB_HOME={home}: a restore is writing it (commonlab restore): start the "
            "facility when it has finished"
        ) from None
    return fd


def _check_record(
    db: Database, signer: Signer, path: Path, *, force_fork: bool
) -> list[dict[str, object]]:
    """Refuse to start on a record that does not extend the latest checkpoint a witness
    cosigned, as remembered in `path` (record/witnessed.py): a restored older backup, or
    another facility's keys. Forced, the fork goes on the record and the cosigned
    checkpoint remembered becomes the restored log's own latest one. Returns the forks on
    the record, for /health to announce."""
    verifier = Verifier.from_key(signer.verifier_key())
    with db.session() as session:
        with session.begin():
            remembered = load_witnessed(path)
            problem = None if remembered is None else contradiction(session, remembered, verifier)
            if problem and not force_fork:
                raise LogContradictsWitness(
                    f"refusing to start: {problem}. Restore a newer backup, or start with "
                    "`commonlab up --force-fork` to continue this log as a fork, written on "
                    "the record and announced to every witness"
                )
            if problem and remembered:
                record_fork(session, remembered, reason=problem)
        if problem:
            sequence(session, signer)  # the fork is in a signed checkpoint before any request
        with session.begin():
            # Also learns cosignatures the file missed (a home older than the file).
            latest = latest_cosigned(session)
        if latest is not None:
            remember_witnessed(path, latest, replace=bool(problem))
        elif problem:
            path.unlink()
        return forks_on_record(session)


def _lock_down(settings: Settings, *, passage: bool) -> None:
    """No other user reads anything of the home: it and everything in it are the facility's
    alone (folders 0700, files 0600), the signing key too wherever it lives. Where a job's
    own user must reach its folder by path (`passage`), the folders from the home down to
    the jobs' let others through without listing them (0711), and each job's folder is its
    own (compute/executors/sandbox.py: lock_job_folders). Run at every start, so an older
    home is brought to the rule as well."""
    home = settings.home.resolve()
    jobs = settings.jobs_path.resolve()
    # Folders filled later are made now, so that none is ever born readable by others.
    for folder in (jobs, home / "objects"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    through: set[Path] = set()
    if passage and jobs.is_relative_to(home):
        through = {p for p in jobs.parents if p.is_relative_to(home)}
    for folder in sorted(through | {home}):
        os.chmod(folder, 0o711 if folder in through else 0o700)
        for entry in folder.iterdir():
            if entry.resolve() in through or entry.resolve() == jobs or entry.is_symlink():
                continue
            os.chmod(entry, 0o700 if entry.is_dir() else 0o600)
    if jobs.is_dir() and jobs.stat().st_uid == os.geteuid():
        os.chmod(jobs, 0o711 if passage else 0o700)
    lock_job_folders(jobs, traverse=passage)
    _make_private("COMMONLAB_SIGNING_KEY_PATH", settings.key_path)
    if config := os.environ.get("COMMONLAB_CONFIG"):
        # It may hold the database's password.
        _make_private("COMMONLAB_CONFIG", Path(config))


def _make_private(setting: str, path: Path) -> None:
    if path.stat().st_mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{setting}={path}: others may read it, and it can't be made private "
                f"({exc.strerror}): chmod 600 it"
            ) from None


def _load_or_create_signer(settings: Settings) -> Signer:
    path = settings.key_path
    if not path.exists():
        if settings.signing_key_path is not None:
            raise ConfigError(f"COMMONLAB_SIGNING_KEY_PATH={path}: no such file")
        skey, _ = generate_signer(settings.origin)
        _write_private(path, skey.encode() + b"\n")
    try:
        signer = Signer.from_key(path.read_text().strip())
    except (OSError, NoteError) as exc:
        raise ConfigError(f"COMMONLAB_SIGNING_KEY_PATH={path}: not a signer key ({exc})") from None
    if settings.log_origin and signer.name != settings.log_origin:
        raise ConfigError(
            f"COMMONLAB_LOG_ORIGIN={settings.log_origin!r}: the signing key is for "
            f"{signer.name!r}; a log keeps its origin for life"
        )
    return signer


def _load_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` (0600) holding `data`, unless it exists: written aside and linked into
    place, so that hosts started at once on a shared home each find one whole file (the
    first link wins; the others keep what it holds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        aside.unlink()
