"""Writing to the public record: `append` adds an entry inside the caller's transaction.

A change and its entry commit or roll back together. Private values enter only as salted
SHA-256 commitments; the salt and value stay in a private table so the holder can later open
a commitment to an auditor. People appear by pseudonym, and by name only when they act in a
public role (delegate, safety officer, operator).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from commonlab.db import utcnow
from commonlab.identity.principal import Principal, Role
from commonlab.record.canonical import canonical_json
from commonlab.record.merkle import leaf_hash
from commonlab.record.models import Entry, PrivateOpening

__all__ = ["MAX_ENTRY_BYTES", "PUBLIC_ROLES", "actor_ref", "append", "commitment", "format_time"]

# tlog-tiles entry bundles prefix each entry with a uint16 length.
MAX_ENTRY_BYTES = 65_535
PUBLIC_ROLES = frozenset({Role.DELEGATE, Role.SAFETY_OFFICER, Role.OPERATOR})
APPENDED_FLAG = "record_appended"


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
) -> Entry:
    """Add one entry in the caller's open transaction and return it (not yet sequenced)."""
    data = dict(data or {})
    private = dict(private or {})
    if clash := data.keys() & private.keys():
        raise ValueError(f"fields both public and private: {sorted(clash)}")
    openings = []
    for field, value in private.items():
        salt = secrets.token_bytes(32)
        value_json = canonical_json(value)
        data[field] = {"commitment": commitment(salt, value_json)}
        openings.append((field, salt, value_json))
    moment = utcnow()
    body = canonical_json(
        {
            "type": str(event),
            "time": format_time(moment),
            "actor": actor_ref(actor, as_role=as_role),
            "subject": subject,
            "data": data,
        }
    )
    if len(body) > MAX_ENTRY_BYTES:
        raise ValueError(f"record entry of {len(body)} bytes exceeds {MAX_ENTRY_BYTES}")
    entry = Entry(
        type=str(event), subject=subject, time=moment, body=body, leaf_hash=leaf_hash(body)
    )
    db.add(entry)
    db.flush()
    for field, salt, value_json in openings:
        db.add(PrivateOpening(entry_id=entry.id, field=field, salt=salt, value=value_json))
    db.info[APPENDED_FLAG] = True
    return entry
