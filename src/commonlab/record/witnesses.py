"""Witnesses: the keys the facility accepts cosignatures from, and the cosignatures themselves.

Registering a witness key is a council decision (governance calls `register_witness`); until
governance lands, operators register them. Cosignatures are not record entries (each would
need a new checkpoint, to be cosigned again): they are served beside the checkpoint instead.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal, Role
from commonlab.record.checkpoint import CosignatureVerifier, verify_cosignature
from commonlab.record.events import RecordEvent
from commonlab.record.models import Checkpoint, Cosignature, Witness
from commonlab.record.note import NoteError, parse_signature_line
from commonlab.record.witnessed import cosigned_at, remember_witnessed

__all__ = [
    "accept_cosignature",
    "check_witness_key",
    "list_witnesses",
    "register_witness",
    "register_witness_in",
]


def register_witness(db: Session, actor: Principal, *, name: str, verifier_key: str) -> Witness:
    with db.begin():
        return register_witness_in(db, actor, name=name, verifier_key=verifier_key)


def register_witness_in(
    db: Session, actor: Principal, *, name: str, verifier_key: str, motion_id: int | None = None
) -> Witness:
    """Register a witness inside the caller's transaction (a council motion's effect uses it)."""
    check_witness_key(name=name, verifier_key=verifier_key)
    authorize(actor, Action.WitnessRegister, Resource.record())
    if db.scalar(select(Witness.id).where(Witness.name == name)) is not None:
        raise Conflict(f"a witness named {name!r} is already registered")
    witness = Witness(name=name, verifier_key=verifier_key)
    db.add(witness)
    db.flush()
    record.append(
        db,
        RecordEvent.WitnessRegistered,
        actor=actor,
        as_role=Role.OPERATOR,
        subject=f"witness/{name}",
        data={
            "verifier_key": verifier_key,
            **({"motion": motion_id} if motion_id is not None else {}),
        },
    )
    return witness


def check_witness_key(*, name: str, verifier_key: str) -> None:
    try:
        parsed = CosignatureVerifier.from_key(verifier_key)
    except (NoteError, ValueError) as exc:
        raise InvalidInput(f"not a cosignature/v1 witness verifier key: {exc}") from None
    if parsed.name != name:
        raise InvalidInput(f"the key is for witness {parsed.name!r}, not {name!r}")


def list_witnesses(db: Session) -> list[Witness]:
    with db.begin():
        return list(
            db.scalars(select(Witness).where(Witness.retired_at.is_(None)).order_by(Witness.id))
        )


def accept_cosignature(
    db: Session, *, size: int, line: str, remember_in: Path | None = None
) -> Cosignature:
    """Store a witness's cosignature over the checkpoint of `size`, if it verifies, and raise
    the cosigned checkpoint remembered in the file `remember_in` (record/witnessed.py), in
    the same transaction: a cosignature the file could not keep is not accepted."""
    line = line if line.endswith("\n") else line + "\n"
    try:
        signature, _ = parse_signature_line(line.removesuffix("\n"))
    except (NoteError, ValueError) as exc:
        raise InvalidInput(f"not a signature line: {exc}") from None
    with db.begin():
        checkpoint = db.get(Checkpoint, size)
        if checkpoint is None:
            raise NotFound(f"no checkpoint was signed at size {size}")
        witness = db.scalar(
            select(Witness).where(Witness.name == signature.name, Witness.retired_at.is_(None))
        )
        if witness is None:
            raise InvalidInput(
                f"{signature.name!r} is not a registered witness: the council registers witnesses"
            )
        body = checkpoint.note.decode().split("\n\n", 1)[0] + "\n"
        try:
            timestamp = verify_cosignature(line, body, witness.verifier_key)
        except (NoteError, ValueError) as exc:
            raise InvalidInput(f"the cosignature does not verify: {exc}") from None
        existing = db.scalar(
            select(Cosignature).where(
                Cosignature.checkpoint_size == size, Cosignature.witness == witness.name
            )
        )
        if existing is None:
            existing = Cosignature(
                checkpoint_size=size, witness=witness.name, line=line, timestamp=timestamp
            )
            db.add(existing)
            db.flush()
        if remember_in is not None:
            remember_witnessed(remember_in, cosigned_at(db, size))
    return existing
