"""Opening a private commitment to an auditor: the value and salt behind one field of one
entry. The opening is itself recorded (who opened which field of which entry), never the value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.errors import NotFound
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal, Role
from commonlab.record.events import RecordEvent
from commonlab.record.models import Entry, PrivateOpening
from commonlab.record.service import commitment

__all__ = ["Opening", "open_commitment"]


@dataclass(frozen=True)
class Opening:
    index: int
    field: str
    value: Any
    salt_hex: str
    commitment: str


def open_commitment(db: Session, actor: Principal, *, index: int, field: str) -> Opening:
    with db.begin():
        authorize(actor, Action.CommitmentOpen, Resource.record(index))
        entry = db.scalar(select(Entry).where(Entry.seq == index))
        if entry is None:
            raise NotFound(f"no entry at index {index}")
        opening = db.scalar(
            select(PrivateOpening).where(
                PrivateOpening.entry_id == entry.id, PrivateOpening.field == field
            )
        )
        if opening is None:
            raise NotFound(f"entry {index} has no private field {field!r}")
        record.append(
            db,
            RecordEvent.CommitmentOpened,
            actor=actor,
            as_role=Role.OPERATOR if actor.has_role(Role.OPERATOR) else None,
            subject=f"entry/{index}",
            data={"field": field},
        )
    return Opening(
        index=index,
        field=field,
        value=json.loads(opening.value),
        salt_hex=opening.salt.hex(),
        commitment=commitment(opening.salt, opening.value),
    )
