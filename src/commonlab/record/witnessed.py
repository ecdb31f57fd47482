"""The latest checkpoint a witness cosigned, remembered outside the database, and the check
that the record still extends it.

A database restored from an older backup forgets the cosignatures it was given since, so
the facility also keeps the largest cosigned checkpoint in a file of its home that no backup
holds and no restore writes (`witnessed.json`, raised by every accepted cosignature). At
start the record must extend it: a log shorter than it, or whose tree at its size has another
root, is not the log the witnesses vouched for, and the facility refuses to start unless the
operator forces it, which writes the fork on the record (`record:log:forked`)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.errors import CommonlabError
from commonlab.policy.principal import SYSTEM
from commonlab.record.checkpoint import CheckpointError, parse_checkpoint
from commonlab.record.events import RecordEvent
from commonlab.record.merkle import tree_root
from commonlab.record.models import Checkpoint, Cosignature, Entry, Head
from commonlab.record.note import NoteError, Verifier, open_note
from commonlab.record.store import stored_tile
from commonlab.record.tiles import TileHashReader

__all__ = [
    "FILE_NAME",
    "LogContradictsWitness",
    "Witnessed",
    "contradiction",
    "cosigned_at",
    "forks_on_record",
    "latest_cosigned",
    "load_witnessed",
    "record_fork",
    "remember_witnessed",
    "witnessed_path",
]

FILE_NAME = "witnessed.json"


class LogContradictsWitness(CommonlabError):
    """The record is shorter than, or different from, a checkpoint a witness cosigned."""


@dataclass(frozen=True)
class Witnessed:
    """A checkpoint the facility signed and at least one registered witness cosigned."""

    size: int
    root_hash: bytes
    note: str  # the signed checkpoint followed by the cosignature lines, as served
    witnesses: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "note": self.note,
            "witnesses": list(self.witnesses),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Witnessed:
        return cls(
            size=int(data["size"]),
            root_hash=base64.b64decode(data["root_hash"], validate=True),
            note=str(data["note"]),
            witnesses=tuple(str(name) for name in data["witnesses"]),
        )


def witnessed_path(home: Path) -> Path:
    return home / FILE_NAME


def load_witnessed(path: Path) -> Witnessed | None:
    """The remembered checkpoint, None when no witness has cosigned one yet. A file that
    cannot be read fails closed: the start it guards is refused, never waved through."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LogContradictsWitness(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return Witnessed.from_json(json.loads(text)["witnessed"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LogContradictsWitness(
            f"{path} is damaged ({exc}): it holds the latest checkpoint a witness cosigned; "
            "put it back from where it was copied, or compare the log with a witness by hand"
        ) from None


def remember_witnessed(path: Path, witnessed: Witnessed, *, replace: bool = False) -> bool:
    """Raise the remembered checkpoint to `witnessed` if it is larger (or, at the same size,
    adds witnesses); `replace` writes it whatever it was (after a forced fork). Returns
    whether the file changed. Workers of one home take turns through a lock file."""
    with _locked(path):
        current = None if replace else load_witnessed(path)
        if current is not None:
            if witnessed.size < current.size:
                return False
            if witnessed.size == current.size:
                names = tuple(dict.fromkeys(current.witnesses + witnessed.witnesses))
                if names == current.witnesses:
                    return False
                witnessed = Witnessed(witnessed.size, witnessed.root_hash, witnessed.note, names)
        _write_atomically(path, json.dumps({"witnessed": witnessed.to_json()}, indent=2))
        return True


def latest_cosigned(db: Session) -> Witnessed | None:
    """The largest checkpoint the database holds a cosignature for (in the caller's
    transaction), with all its cosignature lines."""
    size = db.scalar(
        select(Cosignature.checkpoint_size).order_by(Cosignature.checkpoint_size.desc()).limit(1)
    )
    if size is None:
        return None
    return cosigned_at(db, size)


def cosigned_at(db: Session, size: int) -> Witnessed:
    checkpoint = db.get_one(Checkpoint, size)
    rows = db.execute(
        select(Cosignature.witness, Cosignature.line)
        .where(Cosignature.checkpoint_size == size)
        .order_by(Cosignature.id)
    ).all()
    return Witnessed(
        size=size,
        root_hash=checkpoint.root_hash,
        note=checkpoint.note.decode() + "".join(row.line for row in rows),
        witnesses=tuple(row.witness for row in rows),
    )


def contradiction(db: Session, witnessed: Witnessed, verifier: Verifier) -> str | None:
    """Why the stored log does not extend `witnessed` (in the caller's transaction), or None.

    Only the signed head counts: entries waiting to be sequenced are not yet in any tree."""
    try:
        signed = parse_checkpoint(open_note(witnessed.note.encode(), verifiers=[verifier]).text)
    except (NoteError, CheckpointError):
        return (
            f"the checkpoint of {witnessed.size} entries that {_names(witnessed)} cosigned is "
            f"not signed by this facility's key {verifier.name}: the keys were changed or "
            "restored from another facility"
        )
    if (signed.size, signed.root_hash) != (witnessed.size, witnessed.root_hash):
        return "the remembered cosigned checkpoint is damaged: its note says another size or root"
    head = db.get(Head, 1)
    size = 0 if head is None else head.size
    if size < witnessed.size:
        return (
            f"the record holds {size} entries, but {_names(witnessed)} cosigned a checkpoint "
            f"of {witnessed.size}: {witnessed.size - size} entries the witnesses vouched for "
            "are gone (an older backup was restored?)"
        )
    reader = TileHashReader(lambda level, index: stored_tile(db, level, index)[0])
    try:
        root = tree_root(witnessed.size, reader)
    except (KeyError, ValueError) as exc:
        return f"the record's tree cannot be read back to size {witnessed.size} ({exc})"
    if root != witnessed.root_hash:
        return (
            f"the record's first {witnessed.size} entries are not the ones "
            f"{_names(witnessed)} cosigned: the tree at that size has another root"
        )
    return None


def record_fork(db: Session, witnessed: Witnessed, *, reason: str) -> None:
    """Put the forced fork on the record (in the caller's transaction)."""
    head = db.get_one(Head, 1)
    record.append(
        db,
        RecordEvent.LogForked,
        actor=SYSTEM,
        subject="record/log",
        data={
            "reason": reason,
            "witnessed_size": witnessed.size,
            "witnessed_root": base64.b64encode(witnessed.root_hash).decode(),
            "witnesses": list(witnessed.witnesses),
            "restored_size": head.size,
            "restored_root": base64.b64encode(head.root_hash).decode(),
        },
    )


def forks_on_record(db: Session) -> list[dict[str, Any]]:
    """Every fork the record holds, oldest first: what health and the portal announce."""
    with db.begin():
        rows = db.execute(
            select(Entry.seq, Entry.body)
            .where(Entry.type == str(RecordEvent.LogForked))
            .order_by(Entry.id)
        ).all()
    forks = []
    for seq, body in rows:
        entry = json.loads(body)
        forks.append({"index": seq, "time": entry["time"], **entry["data"]})
    return forks


def _names(witnessed: Witnessed) -> str:
    return ", ".join(witnessed.witnesses) or "a witness"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one
