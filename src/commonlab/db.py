"""The database: one declarative base, one engine per facility, sessions for use cases.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL (psycopg 3) at scale. Tables
are named `<domain>_<plural>`, constraints follow one naming convention so Alembic can name
them the same way on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Database",
    "UTCDateTime",
    "as_utc",
    "get_or_404",
    "lock_for_writing",
    "one_at_a_time",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A client's datetime in UTC; one without a zone is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def get_or_404(db: Session, model: type[Any], ident: int, label: str) -> Any:
    """The row with this primary key, or NotFound naming what was looked for."""
    from commonlab.errors import NotFound

    row = db.get(model, ident)
    if row is None:
        raise NotFound(f"no {label} with id {ident}")
    return row


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def lock_for_writing(db: Session) -> None:
    """Take SQLite's write lock at the start of a transaction that will write.

    In WAL mode a transaction that reads first and then writes, after another writer has
    committed in between, fails at once with "database is locked" (its snapshot is stale)
    instead of waiting for busy_timeout. A no-op UPDATE as the first statement takes the lock
    up front, so writers queue instead. PostgreSQL needs nothing."""
    if db.get_bind().dialect.name == "sqlite":
        db.execute(text("UPDATE record_head SET id = id WHERE 0"))


def one_at_a_time(db: Session | Connection, name: str) -> None:
    """Let one transaction at a time past this point, across every process and host on the
    database, until it ends: on PostgreSQL a transaction-level advisory lock keyed by `name`
    (eight ASCII letters, a 64-bit key). For what several hosts started at once would each
    do once (migrate, create the first operator). On SQLite nothing: it serves one host,
    whose `up` does these once, in its parent process."""
    bind = db.get_bind() if isinstance(db, Session) else db
    if bind.dialect.name == "postgresql":
        key = int.from_bytes(name.encode("ascii"), "big", signed=True)
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class Database:
    """An engine and the session factory use cases open their transaction on."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, echo=echo, **_engine_options(url))
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # One connection per thread; uvicorn's threadpool shares the file through WAL.
        return {"connect_args": {"check_same_thread": False, "timeout": 10}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
