"""Reading back what a service wrote on the record, straight from its table: the tests of a
service call it directly and check the entry its use case appended."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from commonlab.db import Database
from commonlab.record.models import Entry

__all__ = ["last_entry", "written"]


def written(db: Database, type_prefix: str = "") -> list[dict[str, Any]]:
    """Every entry committed so far whose type starts with `type_prefix`, oldest first."""
    with db.session() as session:
        bodies = session.scalars(
            select(Entry.body).where(Entry.type.startswith(type_prefix)).order_by(Entry.id)
        )
        return [json.loads(body) for body in bodies]


def last_entry(db: Database, type_: str) -> dict[str, Any]:
    """The newest entry of exactly this type (one must exist)."""
    entries = [entry for entry in written(db, type_) if entry["type"] == type_]
    assert entries, f"no {type_} entry was written"
    return entries[-1]
