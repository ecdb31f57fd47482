"""Reading the public record: the latest checkpoint, tiles and entry bundles byte-exact to
C2SP tlog-tiles, entries with filters, and inclusion and consistency proofs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from commonlab.errors import InvalidInput, NotFound
from commonlab.record.merkle import HASH_SIZE
from commonlab.record.models import Cosignature, Entry, Tile
from commonlab.record.store import ProofReader, entry_by_hash, latest_checkpoint
from commonlab.record.tiles import TILE_WIDTH, encode_entry_bundle, parse_tile_path

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "checkpoint_with_cosignatures",
    "consistency",
    "entries_query",
    "entry_at",
    "entry_json",
    "inclusion",
    "tile_bytes",
]


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    root_hash: bytes
    proof: list[bytes]


def checkpoint_with_cosignatures(db: Session) -> bytes:
    """The latest signed checkpoint with every accepted witness cosignature appended."""
    with db.begin():
        checkpoint = latest_checkpoint(db)
        lines = db.scalars(
            select(Cosignature.line)
            .where(Cosignature.checkpoint_size == checkpoint.size)
            .order_by(Cosignature.id)
        ).all()
    return checkpoint.note + "".join(lines).encode()


def tile_bytes(db: Session, path: str) -> tuple[bytes, bool]:
    """The bytes of `tile/...` and whether they are a full (immutable) tile."""
    try:
        level, index, width = parse_tile_path(path)
    except ValueError as exc:
        raise NotFound(str(exc)) from None
    want = width or TILE_WIDTH
    with db.begin():
        size = latest_checkpoint(db).size
        if level == "entries":
            return _entry_bundle(db, index, want, size), width is None
        stored = _stored_width(db, level, index)
        if stored is None or stored[1] < want:
            raise NotFound(f"tile {path} does not exist at tree size {size}")
        return stored[0][: want * HASH_SIZE], width is None


def _stored_width(db: Session, level: int, index: int) -> tuple[bytes, int] | None:
    data = db.scalar(select(Tile.hashes).where(Tile.level == level, Tile.idx == index))
    return None if data is None else (data, len(data) // HASH_SIZE)


def _entry_bundle(db: Session, index: int, width: int, size: int) -> bytes:
    start = index * TILE_WIDTH
    if start + width > size:
        raise NotFound(f"entry bundle {index} with {width} entries is beyond tree size {size}")
    bodies = db.scalars(
        select(Entry.body).where(Entry.seq >= start, Entry.seq < start + width).order_by(Entry.seq)
    ).all()
    if len(bodies) != width:  # pragma: no cover - a damaged store
        raise NotFound(f"entry bundle {index} is incomplete in the store")
    return encode_entry_bundle(bodies)


def entries_query(*, type_prefix: str | None = None, subject: str | None = None) -> Select[Any]:
    query = select(Entry).where(Entry.seq.is_not(None))
    if type_prefix:
        # `identity:token` matches every token event; an exact type matches itself.
        query = query.where(
            (Entry.type == type_prefix)
            | Entry.type.startswith(type_prefix.rstrip(":") + ":", autoescape=True)
        )
    if subject:
        query = query.where(Entry.subject == subject)
    return query


def entry_at(db: Session, index: int) -> Entry:
    with db.begin():
        entry = db.scalar(select(Entry).where(Entry.seq == index))
    if entry is None:
        raise NotFound(f"no entry at index {index} (yet): the log may be shorter")
    return entry


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "index": entry.seq,
        "leaf_hash": entry.leaf_hash.hex(),
        "entry": json.loads(entry.body),
    }


def inclusion(
    db: Session,
    proofs: ProofReader,
    *,
    index: int | None,
    leaf_hash_hex: str | None,
    size: int | None,
) -> InclusionProof:
    if (index is None) == (leaf_hash_hex is None):
        raise InvalidInput("give exactly one of index or hash")
    with db.begin():
        size = _tree_size(db, size)
        if leaf_hash_hex is not None:
            entry = entry_by_hash(db, _hex_hash(leaf_hash_hex))
        else:
            entry = db.scalar(select(Entry).where(Entry.seq == index))
            if entry is None:
                raise NotFound(f"no entry at index {index}")
        assert entry.seq is not None
        if entry.seq >= size:
            raise InvalidInput(
                f"entry {entry.seq} is not in the tree of size {size}: ask for a larger size"
            )
        proof = proofs.inclusion(db, entry.seq, size)
        root = proofs.root(db, size)
    return InclusionProof(entry.seq, size, entry.leaf_hash, root, proof)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]


def consistency(db: Session, proofs: ProofReader, *, old: int, new: int | None) -> ConsistencyProof:
    with db.begin():
        new = _tree_size(db, new)
        if old > new:
            raise InvalidInput(f"old size {old} is larger than new size {new}")
        proof = proofs.consistency(db, old, new)
        return ConsistencyProof(old, new, proofs.root(db, old), proofs.root(db, new), proof)


def _tree_size(db: Session, size: int | None) -> int:
    """`size`, checked against what is signed; the latest checkpoint's size when None."""
    latest = latest_checkpoint(db).size
    if size is None:
        return latest
    if size > latest:
        raise InvalidInput(f"size {size} is beyond the latest checkpoint ({latest})")
    return size


def _hex_hash(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput("hash must be 64 hexadecimal characters (a SHA-256 leaf hash)") from None
    if len(raw) != HASH_SIZE:
        raise InvalidInput("hash must be 64 hexadecimal characters (a SHA-256 leaf hash)")
    return raw
