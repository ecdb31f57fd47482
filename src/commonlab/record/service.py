"""Writing to the public record: `append` adds an entry inside the caller's transaction.

A change and its entry commit or roll back together. Private values enter only as salted
SHA-256 commitments; the salt and value stay in a private table so the holder can later open
a commitment to an auditor. Which fields may be in clear is declared per event type
(`record/fields.py`), and `append` refuses anything else. People appear by pseudonym, and by
name only when they act in a public role (delegate, safety officer, operator). Every entry
names the policy set it was decided under (`policy_set`: its SHA-256), beside the actor.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from commonlab.db import utcnow
from commonlab.policy import policy_set_hash
from commonlab.policy.principal import Principal, Role
from commonlab.record import fields
from commonlab.record.canonical import canonical_entry, canonical_json
from commonlab.record.log import checkpoint_with_cosignatures, entries_query, entry_at, inclusion
from commonlab.record.merkle import leaf_hash
from commonlab.record.models import Checkpoint, Entry, PrivateOpening

__all__ = [
    "ENTRY_SCHEMA",
    "MAX_ENTRY_BYTES",
    "PUBLIC_ROLES",
    "AppendedEntry",
    "actor_ref",
    "append",
    "checkpoint_signed_at",
    "checkpoint_with_cosignatures",
    "commitment",
    "entries_per_day",
    "entry_at",
    "entry_types",
    "format_time",
    "inclusion",
    "newest_entries",
    "savepoint",
    "sequenced_count",
]

# The version of the entry schemas (record/fields.py and each domain's events.py) in every
# entry's envelope; entries without one are version 1. Raise it when an event type gains a
# field an auditor needs, and say in docs/record.md what changed (the audit reads both).
ENTRY_SCHEMA = 2
# tlog-tiles entry bundles prefix each entry with a uint16 length.
MAX_ENTRY_BYTES = 65_535
PUBLIC_ROLES = frozenset({Role.DELEGATE, Role.SAFETY_OFFICER, Role.OPERATOR})
APPENDED_FLAG = "record_appended"
_ZERO = timedelta(0)
_PENDING = "record_pending_entries"


@dataclass(frozen=True)
class AppendedEntry:
    """What `append` wrote: the entry's exact bytes and leaf hash (its index comes later)."""

    type: str
    subject: str
    body: bytes
    leaf_hash: bytes


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, e.g. 2026-11-27T23:47:47.000000Z."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def actor_ref(actor: Principal, *, as_role: Role | None = None) -> dict[str, str]:
    """How an actor appears on the record: a pseudonym, plus name and role in a public role."""
    if as_role is not None and as_role in PUBLIC_ROLES and actor.has_role(as_role):
        return {"id": actor.pseudonym, "name": actor.name or actor.pseudonym, "role": as_role}
    return {"id": actor.pseudonym}


def commitment(salt: bytes, value_json: bytes) -> str:
    return "sha256:" + hashlib.sha256(salt + value_json).hexdigest()


def append(
    db: Session,
    event: StrEnum | str,
    *,
    actor: Principal,
    subject: str,
    data: Mapping[str, Any] | None = None,
    private: Mapping[str, Any] | None = None,
    as_role: Role | None = None,
) -> AppendedEntry:
    """Add one entry in the caller's open transaction (it is sequenced after commit).

    `data` goes in clear and `private` as salted commitments, each field as `event` declares
    it (record/fields.py): an undeclared event type or a field not declared public in `data`
    raises, before anything is written. The entry's envelope carries the SHA-256 of the
    policy set in force (`policy_set`): the rules every decision on the record was made
    under, whoever the actor, so no domain has to remember to add it."""
    data = dict(data or {})
    private = dict(private or {})
    fields.check(event, public=data.keys(), private=private.keys())
    if clash := data.keys() & private.keys():
        raise ValueError(f"fields both public and private: {sorted(clash)}")
    openings = []
    for field, value in private.items():
        salt = secrets.token_bytes(32)
        value_json = canonical_json(value)
        data[field] = {"commitment": commitment(salt, value_json)}
        openings.append((field, salt, value_json))
    moment = utcnow()
    body = canonical_entry(
        type=str(event),
        time=format_time(moment),
        actor=actor_ref(actor, as_role=as_role),
        subject=subject,
        data=data,
        policy_set=policy_set_hash(),
        schema=ENTRY_SCHEMA,
    )
    if len(body) > MAX_ENTRY_BYTES:
        raise ValueError(f"record entry of {len(body)} bytes exceeds {MAX_ENTRY_BYTES}")
    row = {
        "type": str(event),
        "subject": subject,
        "time": moment,
        "body": body,
        "leaf_hash": leaf_hash(body),
    }
    # Entries are inserted together just before commit, in the order appended: one statement
    # per transaction (and one for the openings of its private fields) instead of one or two
    # per entry.
    db.info.setdefault(_PENDING, []).append(_Pending(row, openings))
    db.info[APPENDED_FLAG] = True
    return AppendedEntry(row["type"], subject, body, row["leaf_hash"])


@event.listens_for(Session, "before_commit")
def _write_pending(db: Session) -> None:
    rows = db.info.pop(_PENDING, None)
    if rows:
        _insert_entries(db, rows)


# The driver's own executemany, its parameters already in the form the driver stores: through
# SQLAlchemy's Core insert, converting each row's five values cost more than SQLite's insert.
_INSERT_ENTRIES = {
    "sqlite": "INSERT INTO record_entries (type, subject, time, body, leaf_hash) "
    "VALUES (?, ?, ?, ?, ?)",
    "postgresql": "INSERT INTO record_entries (type, subject, time, body, leaf_hash) "
    "VALUES (%s, %s, %s, %s, %s)",
}


@dataclass(frozen=True, slots=True)
class _Pending:
    """An entry appended in this transaction, not yet written: its row, and the openings of
    its private fields (field, salt, canonical value), which need the row's id."""

    row: dict[str, Any]
    openings: list[tuple[str, bytes, bytes]]


def _insert_entries(db: Session, pending: list[_Pending]) -> None:
    if any(entry.openings for entry in pending):
        _insert_with_openings(db, pending)
        return
    connection = db.connection()
    dialect = connection.dialect.name
    if dialect not in _INSERT_ENTRIES:  # pragma: no cover - only SQLite and PostgreSQL run
        db.execute(insert(Entry.__table__), [entry.row for entry in pending])
        return
    connection.exec_driver_sql(
        _INSERT_ENTRIES[dialect],
        [
            (row["type"], row["subject"], _stored_time(row["time"], dialect), row["body"],
             row["leaf_hash"])
            for row in (entry.row for entry in pending)
        ],
    )  # fmt: skip


def _insert_with_openings(db: Session, pending: list[_Pending]) -> None:
    """One INSERT ... RETURNING for the entries (ids in the order given, so the log's order is
    the order appended), then one insert of every opening under its entry's id."""
    ids = db.scalars(
        insert(Entry).returning(Entry.id, sort_by_parameter_order=True),
        [entry.row for entry in pending],
    ).all()
    db.execute(
        insert(PrivateOpening),
        [
            {"entry_id": entry_id, "field": field, "salt": salt, "value": value}
            for entry_id, entry in zip(ids, pending, strict=True)
            for field, salt, value in entry.openings
        ],
    )


def _stored_time(moment: datetime, dialect: str) -> datetime | str:
    """The time as `UTCDateTime` stores it: SQLite keeps naive UTC text with microseconds
    (SQLAlchemy's format, which reads it back), PostgreSQL a timestamp with time zone."""
    if dialect == "sqlite":
        return moment.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    return moment


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(db: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without writing them (a commit pops them first):
    # they belonged to changes that were rolled back.
    if transaction.parent is None:
        db.info.pop(_PENDING, None)


@contextmanager
def savepoint(db: Session) -> Iterator[None]:
    """A SAVEPOINT whose rollback also takes back the entries appended inside it."""
    mark = len(db.info.get(_PENDING, ()))
    try:
        with db.begin_nested():
            yield
    except BaseException:
        if (rows := db.info.get(_PENDING)) is not None:
            del rows[mark:]
        raise


# Reads for the portal -----------------------------------------------------------------------
# The record as its pages (and `commonlab record verify`) show it, beside the log's own reads
# (`entry_at`, `inclusion`, `checkpoint_with_cosignatures`). Public, each one transaction.


def checkpoint_signed_at(db: Session, size: int) -> datetime | None:
    """When the checkpoint of this tree size was signed, or None if none was."""
    with db.begin():
        signed = db.get(Checkpoint, size)
        return signed.created_at if signed is not None else None


def data_since(db: Session, event: StrEnum | str, since: datetime) -> list[dict[str, Any]]:
    """What the entries of type `event` written since `since` say in clear, oldest first,
    sequenced or not (in the caller's transaction): a domain reading back what it recorded."""
    bodies = db.scalars(
        select(Entry.body).where(Entry.type == str(event), Entry.time >= since).order_by(Entry.id)
    )
    return [json.loads(body)["data"] for body in bodies]


def newest_entries(
    db: Session,
    *,
    type_prefix: str | None = None,
    subject: str | None = None,
    before: int | None = None,
    limit: int,
) -> list[Entry]:
    """Up to `limit` sequenced entries, newest first, older than index `before` when given."""
    query = entries_query(type_prefix=type_prefix, subject=subject)
    if before is not None:
        query = query.where(Entry.seq < before)
    with db.begin():
        return list(db.scalars(query.order_by(Entry.seq.desc()).limit(limit)))


def entry_types(db: Session) -> list[str]:
    """Every entry type written so far."""
    with db.begin():
        return list(db.scalars(select(Entry.type).distinct()))


def entries_per_day(db: Session, *, since: datetime) -> dict[str, int]:
    """Sequenced entries per UTC day ("YYYY-MM-DD") from `since`; days without any left out."""
    # SQLite keeps UTC text; PostgreSQL must be told the zone, or the session's zone is used.
    if db.get_bind().dialect.name == "postgresql":
        day = func.date(func.timezone("UTC", Entry.time))
    else:
        day = func.date(Entry.time)
    with db.begin():
        counts = db.execute(
            select(day, func.count())
            .where(Entry.seq.is_not(None), Entry.time >= since)
            .group_by(day)
        ).all()
    return {str(value)[:10]: int(count) for value, count in counts}


def sequenced_count(db: Session) -> int:
    """How many entries have an index in the log."""
    with db.begin():
        return db.scalar(select(func.count()).where(Entry.seq.is_not(None))) or 0
