"""Writing to the public record: `append` adds an entry inside the caller's transaction.

A change and its entry commit or roll back together. Private values enter only as salted
SHA-256 commitments; the salt and value stay in a private table so the holder can later open
a commitment to an auditor. Which fields may be in clear is declared per event type
(`record/fields.py`), and `append` refuses anything else. People appear by pseudonym, and by
name only when they act in a public role (delegate, safety officer, operator).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import Session, SessionTransaction

from commonlab.db import utcnow
from commonlab.policy.principal import Principal, Role
from commonlab.record import fields
from commonlab.record.canonical import canonical_entry, canonical_json
from commonlab.record.merkle import leaf_hash
from commonlab.record.models import Entry, PrivateOpening

__all__ = [
    "MAX_ENTRY_BYTES",
    "PUBLIC_ROLES",
    "AppendedEntry",
    "actor_ref",
    "append",
    "commitment",
    "format_time",
    "savepoint",
]

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
    raises, before anything is written."""
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
    if openings:
        # The openings need the entry's id: write what is pending first, to keep the order.
        _write_pending(db)
        entry_id = db.execute(insert(Entry).values(**row).returning(Entry.id)).scalar_one()
        db.execute(
            insert(PrivateOpening),
            [
                {"entry_id": entry_id, "field": f, "salt": salt, "value": v}
                for f, salt, v in openings
            ],
        )
    else:
        # Plain entries are inserted together just before commit: one executemany per
        # transaction instead of one statement (or ORM object) per entry.
        db.info.setdefault(_PENDING, []).append(row)
    db.info[APPENDED_FLAG] = True
    return AppendedEntry(row["type"], subject, body, row["leaf_hash"])


@event.listens_for(Session, "before_commit")
def _write_pending(db: Session) -> None:
    rows = db.info.pop(_PENDING, None)
    if rows:
        db.execute(insert(Entry.__table__), rows)  # Core executemany: no ORM bookkeeping


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
