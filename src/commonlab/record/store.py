"""Reading the stored tree: tiles, the head, checkpoints and entries, for the sequencer,
the proof endpoints and `verify`. Tiles only ever grow, so one cached reader serves them all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from commonlab.errors import NotFound
from commonlab.record.merkle import consistency_proof, inclusion_proof, tree_root
from commonlab.record.models import Checkpoint, Entry, Tile
from commonlab.record.tiles import TileHashReader

__all__ = ["ProofReader", "entry_by_hash", "latest_checkpoint", "stored_tile"]


# Built once: proofs fetch tiles in a tight loop, and building a select each time cost more
# than running it.
_TILE = select(Tile.hashes, Tile.inner).where(
    Tile.level == bindparam("level"), Tile.idx == bindparam("idx")
)


def stored_tile(db: Session, level: int, index: int) -> tuple[bytes, bytes | None]:
    """A tile's bottom row and, for a full tile, its inner hashes."""
    row = db.execute(_TILE, {"level": level, "idx": index}).first()
    if row is None:
        raise KeyError(f"no tile {level}/{index}")
    return row[0], row[1]


def latest_checkpoint(db: Session) -> Checkpoint:
    row = db.scalar(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1))
    if row is None:
        raise NotFound("the record has no checkpoint yet: the sequencer signs one at start")
    return row


class ProofReader:
    """Inclusion and consistency proofs from the stored tiles, with an LRU of tiles.

    One instance per process: the cache is shared by every request (guarded by a lock, since
    the LRU reorders itself on reads).
    """

    def __init__(self, *, cache_tiles: int = 4096) -> None:
        self._lock = threading.Lock()
        self._cache_tiles = cache_tiles
        self._session: Session | None = None
        self._reader = TileHashReader(self._get_tile, cache_size=cache_tiles)

    def _get_tile(self, level: int, index: int) -> tuple[bytes, bytes | None]:
        assert self._session is not None
        return stored_tile(self._session, level, index)

    def inclusion(self, db: Session, index: int, size: int) -> list[bytes]:
        with self._bound(db):
            return inclusion_proof(index, size, self._reader)

    def consistency(self, db: Session, old_size: int, new_size: int) -> list[bytes]:
        with self._bound(db):
            return consistency_proof(old_size, new_size, self._reader)

    def root(self, db: Session, size: int) -> bytes:
        with self._bound(db):
            return tree_root(size, self._reader)

    @contextmanager
    def _bound(self, db: Session) -> Iterator[None]:
        with self._lock:
            self._session = db
            try:
                yield
            finally:
                self._session = None


def entry_by_hash(db: Session, leaf_hash: bytes) -> Entry:
    entry = db.scalar(select(Entry).where(Entry.leaf_hash == leaf_hash, Entry.seq.is_not(None)))
    if entry is None:
        raise NotFound("no sequenced entry has this leaf hash")
    return entry
