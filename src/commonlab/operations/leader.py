"""The leader lease: of all the processes serving one facility (workers, hosts), one at a time
runs the record's sequencer, the motion closer, the job controller and, with Slurm, the
account sync and share controller. Every process serves requests and appends entries.

On PostgreSQL the lease is a session-level advisory lock held on a connection of its own: it
goes when the process or that connection dies. On SQLite it is an exclusive `flock` on
`$COMMONLAB_HOME/leader.lock`: it goes when the process dies. Followers try again every
second, so a dead leader is replaced within seconds (docs/operators.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from commonlab.db import Database, utcnow
from commonlab.facility import Facility
from commonlab.record.service import APPENDED_FLAG

__all__ = [
    "LEASE_KEY",
    "Duty",
    "FileLease",
    "LeaderStatus",
    "Leadership",
    "Lease",
    "PostgresLease",
    "leader_status",
    "lease_for",
]

log = logging.getLogger("commonlab.operations.leader")

# The advisory lock's key: "commonlb" read as a signed 64-bit integer. Advisory locks belong
# to one database, so facilities sharing a PostgreSQL server never contend for it.
LEASE_KEY = int.from_bytes(b"commonlb", "big", signed=True)
_CLASSID, _OBJID = (LEASE_KEY >> 32) & 0xFFFFFFFF, LEASE_KEY & 0xFFFFFFFF
LOCK_FILE = "leader.lock"
# Followers NOTIFY it when they commit entries; the leader LISTENs on its lease connection.
NUDGE_CHANNEL = "commonlab_leader"
# How often a follower tries for the lease and a leader checks it still holds it.
RETRY_SECONDS = 1.0


def _this_process() -> str:
    return f"commonlab {socket.gethostname()} pid {os.getpid()}"


class Lease(Protocol):
    holder: str  # this process, as leader_status names it

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; whether this process now holds it."""
        ...

    def held(self) -> bool:
        """Whether this process still holds the lease it took."""
        ...

    def release(self) -> None: ...

    def nudge(self) -> None:
        """A follower: tell the leader there is new work (entries, jobs) now."""
        ...

    def nudged(self, timeout: float) -> bool | None:
        """The leader: wait up to `timeout` for a follower's nudge; None when this lease
        cannot carry nudges (the leader then finds the work on its duties' own ticks)."""
        ...


class PostgresLease:
    """`pg_try_advisory_lock` on a connection kept for nothing else. Keepalives both ways: the
    server drops a dead host's connection (and so its lock) in about 11 s, and a leader cut
    off from the server learns it as soon as it checks."""

    def __init__(self, url: str, *, holder: str | None = None) -> None:
        self.holder = holder or _this_process()
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                # Shown in pg_stat_activity: leader_status names the holder from it.
                "application_name": self.holder[:63],
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
        self._conn: Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        if self._held:
            return True  # taken twice, a session-level advisory lock would need two unlocks
        try:
            if self._conn is None:
                conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._conn = conn
                conn.execute(text("SET tcp_keepalives_idle = 5"))
                conn.execute(text("SET tcp_keepalives_interval = 2"))
                conn.execute(text("SET tcp_keepalives_count = 3"))
            self._held = bool(
                self._conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEASE_KEY})
            )
            if self._held:
                self._conn.execute(text(f"LISTEN {NUDGE_CHANNEL}"))
        except Exception as exc:
            log.warning("leader lease: cannot reach the database (%s); will retry", exc)
            self._drop()
        return self._held

    def nudge(self) -> None:
        if self._conn is None:
            return  # no connection now: the leader's ticks find the work
        try:
            self._conn.execute(text(f"NOTIFY {NUDGE_CHANNEL}"))
        except Exception as exc:
            log.warning("leader lease: cannot nudge the leader (%s)", exc)
            self._drop()

    def nudged(self, timeout: float) -> bool | None:
        if self._conn is None or not self._held:
            return False
        try:
            listening = self._conn.connection.driver_connection
            woken = any(True for _ in listening.notifies(timeout=timeout, stop_after=1))
            # Nudges that came together are one: take them all.
            while any(True for _ in listening.notifies(timeout=0.001, stop_after=1)):
                pass
            return woken
        except Exception as exc:
            log.error("leader lease: lost the connection that holds it (%s)", exc)
            self._drop()
            return False

    def held(self) -> bool:
        if self._conn is None or not self._held:
            return False
        try:
            self._held = bool(
                self._conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND classid = :c AND objid = :o "
                        "AND objsubid = 1 AND granted"
                    ),
                    {"c": _CLASSID, "o": _OBJID},
                )
            )
        except Exception as exc:
            log.error("leader lease: lost the connection that holds it (%s)", exc)
            self._drop()
        return self._held

    def release(self) -> None:
        # Closing the connection ends the session and with it the lock.
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # already broken: nothing left to close
                pass
            self._conn = None


class FileLease:
    """An exclusive `flock` on a file in the home: SQLite's facilities run on one host. The
    holder writes its name into the file; the kernel drops the lock when the process dies."""

    def __init__(self, path: Path, *, holder: str | None = None) -> None:
        self.path = path
        self.holder = holder or _this_process()
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.holder.encode(), 0)
        self._fd = fd
        return True

    def held(self) -> bool:
        # A flock stays with its open file until closed: nothing else can take it away.
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    # SQLite's workers share one host and no channel: the leader's ticks find their work.
    def nudge(self) -> None:
        return None

    def nudged(self, timeout: float) -> bool | None:
        return None


def lease_for(facility: Facility, *, holder: str | None = None) -> Lease:
    """The lease that suits the facility's database."""
    if facility.db.is_sqlite:
        return FileLease(facility.settings.home / LOCK_FILE, holder=holder)
    return PostgresLease(facility.db.url, holder=holder)


@dataclass(frozen=True)
class LeaderStatus:
    held: bool  # some process holds the lease now
    holder: str  # which ("commonlab <host> pid <pid>"), "" when none or unknown


def leader_status(facility: Facility) -> LeaderStatus:
    """Whether some process of this facility holds the lease now (for /api/v1/ready)."""
    if facility.db.is_sqlite:
        return _probe_lock_file(facility.settings.home / LOCK_FILE)
    with facility.db.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT coalesce(a.application_name, '') FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.classid = :c AND l.objid = :o "
                "AND l.objsubid = 1 AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"c": _CLASSID, "o": _OBJID},
        ).first()
    return LeaderStatus(held=row is not None, holder=row[0] if row else "")


def _probe_lock_file(path: Path) -> LeaderStatus:
    """Try the lock without waiting: taken means held. A flock conflicts with another open
    file even in the same process, so the leader's own probe says held too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return LeaderStatus(held=False, holder="")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LeaderStatus(held=True, holder=os.pread(fd, 200, 0).decode(errors="replace"))
        return LeaderStatus(held=False, holder="")
    finally:
        os.close(fd)  # drops the probe's shared lock, if it took one


@dataclass(frozen=True)
class Duty:
    """A background worker only the leader runs: started on taking the lease, stopped on
    losing it (and started again should this process lead again)."""

    name: str
    start: Callable[[], object]
    stop: Callable[[], object]
    wake: Callable[[], object] | None = None  # there is work now (a follower's nudge)


class Leadership:
    """Holds or waits for the lease in a thread, and runs the duties while it holds it.

    `is_leader` is this process's view, refreshed every `retry_s`; `leader_status` asks the
    database (or the lock file) about all of them."""

    def __init__(
        self, lease: Lease, duties: Sequence[Duty], *, retry_s: float = RETRY_SECONDS
    ) -> None:
        self.lease = lease
        self.duties = list(duties)
        self.retry_s = retry_s
        self.since: datetime | None = None  # when this process last took the lease
        self._leading = False
        self._stop = threading.Event()
        self._work = threading.Event()  # this follower committed entries: nudge the leader
        self._thread: threading.Thread | None = None
        self._db: Database | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        """Try once now (a lone process leads from its first request on), then keep trying
        in the background."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._try_to_lead()
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)
        self._thread.start()

    def follow_commits(self, db: Database) -> None:
        """Nudge the leader whenever this process commits record entries (every change
        appends one): it folds them in and drives new jobs at once, not at its next tick."""
        # Ahead of the sequencer's own hook, which takes the flag off the session.
        event.listen(db.sessions, "after_commit", self._after_commit, insert=True)
        self._db = db

    def _after_commit(self, session: Session) -> None:
        if not self._leading and session.info.get(APPENDED_FLAG):
            self._work.set()

    def stop(self) -> None:
        self._stop.set()
        self._work.set()
        if self._db is not None:
            event.remove(self._db.sessions, "after_commit", self._after_commit)
            self._db = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._step_down()
        self.lease.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._leading:
                    self._lead_a_while()
                else:
                    self._follow_a_while()
                    self._try_to_lead()
            except Exception:
                log.exception("leader lease check failed; will retry")
                self._stop.wait(self.retry_s)

    def _lead_a_while(self) -> None:
        """Check the lease is still ours, then wait for followers' nudges until the next
        check, waking the duties on each."""
        if not self.lease.held():
            holder = self.lease.holder
            log.error("%s lost the leader lease: stops %s", holder, _names(self))
            self._step_down()
            return
        nudged = self.lease.nudged(self.retry_s)
        if nudged is None:
            self._stop.wait(self.retry_s)
        elif nudged:
            for duty in self.duties:
                if duty.wake is not None:
                    duty.wake()

    def _follow_a_while(self) -> None:
        """Until it is time to try for the lease again, nudge the leader after each commit
        of this process's that appended entries (many commits, one nudge)."""
        deadline = time.monotonic() + self.retry_s
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if self._work.wait(left):
                self._work.clear()
                if not self._stop.is_set():
                    self.lease.nudge()

    def _try_to_lead(self) -> None:
        if self._stop.is_set() or not self.lease.try_acquire():
            return
        self._leading = True
        self.since = utcnow()
        log.info("%s leads: %s", self.lease.holder, _names(self))
        for duty in self.duties:
            try:
                duty.start()
            except Exception:
                # Half a leader serves nobody: hand the lease on (or take it again later).
                log.exception("%s did not start: giving the leader lease up", duty.name)
                self._step_down()
                self.lease.release()
                return

    def _step_down(self) -> None:
        if not self._leading:
            return
        self._leading = False
        for duty in reversed(self.duties):
            try:
                duty.stop()
            except Exception:
                log.exception("%s did not stop cleanly", duty.name)


def _names(leadership: Leadership) -> str:
    return ", ".join(duty.name for duty in leadership.duties)
