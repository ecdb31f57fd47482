"""Reading the stored tree: tiles, the head, checkpoints and entries, for the sequencer,
the proof endpoints and `verify`. Tiles only ever grow, so one cached reader serves them all."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from commonlab.errors import NotFound
from commonlab.record.merkle import consistency_proof, inclusion_proof, tree_root
from commonlab.record.models import Checkpoint, Entry, Tile
from commonlab.record.tiles import TileHashReader

__all__ = ["ProofReader", "entry_by_hash", "latest_checkpoint", "stored_tile", "tile_getter"]


# Proofs fetch tiles in a tight loop: through the session a read cost about 130 us at ten
# million entries, of which the database's own work was 30 us, so they ask the driver itself
# (in the session's transaction) with the one statement each dialect needs.
_TILE_SQL = {
    "sqlite": 'SELECT hashes, "inner" FROM record_tiles WHERE level = ? AND idx = ?',
    "postgresql": 'SELECT hashes, "inner" FROM record_tiles WHERE level = %s AND idx = %s',
}
_TILE = select(Tile.hashes, Tile.inner).where(
    Tile.level == bindparam("level"), Tile.idx == bindparam("idx")
)
TileRow = tuple[bytes, bytes | None]


def stored_tile(db: Session, level: int, index: int) -> TileRow:
    """A tile's bottom row and, for a full tile, its inner hashes."""
    return tile_getter(db)(level, index)


def tile_getter(db: Session) -> Callable[[int, int], TileRow]:
    """Reads stored tiles in `db`'s transaction: (level, index) -> (bottom row, inner hashes
    or None); KeyError for a tile that is not stored."""
    connection = db.connection()
    sql = _TILE_SQL.get(connection.dialect.name)
    if sql is None:  # pragma: no cover - only SQLite and PostgreSQL run

        def through_session(level: int, index: int) -> TileRow:
            return _found(db.execute(_TILE, {"level": level, "idx": index}).first(), level, index)

        return through_session
    driver = connection.connection.driver_connection
    assert driver is not None

    def get_tile(level: int, index: int) -> TileRow:
        return _found(driver.execute(sql, (level, index)).fetchone(), level, index)

    return get_tile


def _found(row: Any, level: int, index: int) -> TileRow:
    if row is None:
        raise KeyError(f"no tile {level}/{index}")
    return bytes(row[0]), None if row[1] is None else bytes(row[1])


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
        self._get: Callable[[int, int], TileRow] | None = None
        self._reader = TileHashReader(self._get_tile, cache_size=cache_tiles)

    def _get_tile(self, level: int, index: int) -> TileRow:
        assert self._get is not None
        return self._get(level, index)

    def inclusion(self, db: Session, index: int, size: int) -> list[bytes]:
        with self._bound(db):
            return inclusion_proof(index, size, self._reader.read)

    def consistency(self, db: Session, old_size: int, new_size: int) -> list[bytes]:
        with self._bound(db):
            return consistency_proof(old_size, new_size, self._reader.read)

    def root(self, db: Session, size: int) -> bytes:
        with self._bound(db):
            return tree_root(size, self._reader.read)

    @contextmanager
    def _bound(self, db: Session) -> Iterator[None]:
        with self._lock:
            self._get = tile_getter(db)
            try:
                yield
            finally:
                self._get = None


def entry_by_hash(db: Session, leaf_hash: bytes) -> Entry:
    entry = db.scalar(select(Entry).where(Entry.leaf_hash == leaf_hash, Entry.seq.is_not(None)))
    if entry is None:
        raise NotFound("no sequenced entry has this leaf hash")
    return entry
