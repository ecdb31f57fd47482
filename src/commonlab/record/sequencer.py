"""The sequencer: folds committed entries into the Merkle tree and signs a checkpoint.

One batch is one transaction: give the new entries their log indices, extend the tiles,
sign the checkpoint of the new size, move the head. A crash anywhere leaves the previous
state whole, so no checkpoint can ever contradict an earlier one. Writers never wait for it:
they commit their entries and wake it; it runs in a thread beside the web workers.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from commonlab.config import Settings
from commonlab.db import Database, utcnow
from commonlab.record.checkpoint import Checkpoint as CheckpointBody
from commonlab.record.checkpoint import sign_checkpoint
from commonlab.record.merkle import HASH_SIZE, tree_root
from commonlab.record.models import Checkpoint, Entry, Head, Tile
from commonlab.record.note import Signer
from commonlab.record.service import APPENDED_FLAG
from commonlab.record.tiles import TILE_WIDTH, TileHashReader, inner_hashes, new_tile_contents

__all__ = ["DEFAULT_BATCH", "Sequencer", "sequence"]

log = logging.getLogger("commonlab.record.sequencer")
DEFAULT_BATCH = 20_000


def sequence(db: Session, signer: Signer, *, batch: int = DEFAULT_BATCH) -> int:
    """Sequence up to `batch` waiting entries and sign the new checkpoint; return how many."""
    with db.begin():
        # Writing the head row first takes the write lock on SQLite and the row lock on
        # PostgreSQL, so two sequencers (two workers) never fold the same entries.
        db.execute(update(Head).where(Head.id == 1).values(size=Head.size))
        current = db.get_one(Head, 1)
        waiting = db.execute(
            select(Entry.id, Entry.leaf_hash)
            .where(Entry.seq.is_(None))
            .order_by(Entry.id)
            .limit(batch)
        ).all()
        if not waiting:
            _sign_if_unsigned(db, signer, current)
            return 0
        old_size = current.size
        db.execute(
            update(Entry),
            [{"id": row.id, "seq": old_size + i} for i, row in enumerate(waiting)],
        )
        tiles = new_tile_contents(
            old_size, [row.leaf_hash for row in waiting], get_tile=_tile_getter(db)
        )
        _store_tiles(db, tiles)
        new_size = old_size + len(waiting)
        reader = TileHashReader(_tile_getter(db, fresh=tiles), cache_size=64)
        root = tree_root(new_size, reader)
        _sign(db, signer, current, new_size, root)
    return len(waiting)


def _tile_getter(db: Session, fresh: dict[tuple[int, int], bytes] | None = None) -> Any:
    def get_tile(level: int, index: int) -> bytes:
        if fresh and (level, index) in fresh:
            return fresh[(level, index)]
        data = db.scalar(select(Tile.hashes).where(Tile.level == level, Tile.idx == index))
        if data is None:
            raise KeyError(f"tile {level}/{index} is missing: the stored tree is damaged")
        return data

    return get_tile


def _store_tiles(db: Session, tiles: dict[tuple[int, int], bytes]) -> None:
    existing = {
        (level, index)
        for level, index in db.execute(
            select(Tile.level, Tile.idx).where(
                Tile.level.in_({level for level, _ in tiles}),
                Tile.idx.in_({index for _, index in tiles}),
            )
        )
    }
    rows = [
        {"level": level, "idx": index, "hashes": data, "inner": _inner_if_full(data)}
        for (level, index), data in tiles.items()
    ]
    updates = [row for row in rows if (row["level"], row["idx"]) in existing]
    inserts = [row for row in rows if (row["level"], row["idx"]) not in existing]
    if updates:
        db.execute(update(Tile), updates)
    if inserts:
        db.execute(insert(Tile), inserts)


def _inner_if_full(data: bytes) -> bytes | None:
    return inner_hashes(data) if len(data) == TILE_WIDTH * HASH_SIZE else None


def _sign(db: Session, signer: Signer, current: Head, size: int, root: bytes) -> None:
    note = sign_checkpoint(CheckpointBody(origin=signer.name, size=size, root_hash=root), signer)
    db.add(Checkpoint(size=size, root_hash=root, note=note))
    current.size = size
    current.root_hash = root
    current.updated_at = utcnow()


def _sign_if_unsigned(db: Session, signer: Signer, current: Head) -> None:
    # The empty log still needs a signed checkpoint for witnesses to start from.
    if db.get(Checkpoint, current.size) is None:
        _sign(db, signer, current, current.size, current.root_hash)


class Sequencer:
    """Runs `sequence` in a thread: woken by commits that appended entries, else on a tick."""

    def __init__(
        self, db: Database, signer: Signer, *, settings: Settings, wake_on_commit: bool = True
    ) -> None:
        self._db = db
        self._signer = signer
        self._interval = settings.sequencer_interval_ms / 1000
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_on_commit = wake_on_commit
        self._listening = False
        self._listen()

    def _listen(self) -> None:
        if self._wake_on_commit and not self._listening:
            event.listen(self._db.sessions, "after_commit", self._after_commit)
            event.listen(self._db.sessions, "after_rollback", self._after_rollback)
            self._listening = True

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(APPENDED_FLAG, False):
            self._wake.set()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(APPENDED_FLAG, None)

    def run_once(self) -> int:
        """Sequence everything waiting now (in batches); returns how many entries."""
        total = 0
        while True:
            with self._db.session() as session:
                done = sequence(session, self._signer)
            total += done
            if done < DEFAULT_BATCH:
                return total

    def start(self) -> None:
        if self._thread is not None:
            return
        # Started again after a stop: a process that leads once more (operations/leader.py).
        self._stopping.clear()
        self._listen()
        self.run_once()
        self._thread = threading.Thread(target=self._loop, name="record-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._listening:
            event.remove(self._db.sessions, "after_commit", self._after_commit)
            event.remove(self._db.sessions, "after_rollback", self._after_rollback)
            self._listening = False

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # keep sequencing; the next tick retries the same entries
                log.exception("sequencing failed; will retry")
