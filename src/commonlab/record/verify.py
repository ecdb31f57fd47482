"""`commonlab record verify`: check the whole stored log from scratch.

Recomputes every leaf hash from the stored entry bytes, every tree root at every signed
checkpoint, every checkpoint signature, and every stored tile; reports each mismatch. Memory
stays small at any log size: roots come from a compact range (one hash per level), and only
the right-edge partial tiles are held.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.record.checkpoint import open_checkpoint
from commonlab.record.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from commonlab.record.models import Checkpoint, Entry, Head, Tile
from commonlab.record.note import NoteError, Verifier
from commonlab.record.tiles import TILE_WIDTH, inner_hashes, new_tile_contents, tiles_for_tree

__all__ = ["VerifyReport", "verify_store"]

CHUNK = 10_000


@dataclass
class VerifyReport:
    entries: int = 0
    checkpoints: int = 0
    tiles: int = 0
    pending: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(
    db: Session, verifier: Verifier, *, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    report = VerifyReport()
    problems = report.problems
    with db.begin():
        sequenced = db.scalar(select(func.count()).where(Entry.seq.is_not(None))) or 0
        report.pending = db.scalar(select(func.count()).where(Entry.seq.is_(None))) or 0
        checkpoints = iter(db.scalars(select(Checkpoint).order_by(Checkpoint.size)).all())
        head = db.get_one(Head, 1)
        tree = CompactRange()
        partial: dict[tuple[int, int], bytes] = {}
        next_cp = _next_checkpoint(checkpoints, tree, verifier, report)
        last_seq = -1
        query = select(Entry.seq, Entry.body, Entry.leaf_hash).where(Entry.seq.is_not(None))
        for chunk in db.execute(
            query.order_by(Entry.seq).execution_options(yield_per=CHUNK)
        ).partitions():
            leaves = []
            for seq, body, stored_hash in chunk:
                if seq != last_seq + 1:
                    problems.append(f"entry index {last_seq + 1} is missing (next is {seq})")
                last_seq = seq
                computed = leaf_hash(body)
                if computed != stored_hash:
                    problems.append(f"entry {seq}: its bytes do not match its stored leaf hash")
                leaves.append(computed)
                tree.append(computed)
                while next_cp is not None and next_cp.size == tree.size:
                    _check_root(next_cp, tree.root(), report)
                    next_cp = _next_checkpoint(checkpoints, tree, verifier, report)
            _check_tiles(db, tree.size - len(leaves), leaves, partial, report)
            report.entries = tree.size
            if progress:
                progress(tree.size)
        for (level, index), data in partial.items():
            _compare_tile(db, level, index, data, report)
        if next_cp is not None:
            problems.append(
                f"checkpoint at size {next_cp.size} is beyond the {sequenced} sequenced entries"
            )
        expected_tiles = len(tiles_for_tree(tree.size))
        stored_tiles = db.scalar(select(func.count()).select_from(Tile)) or 0
        if stored_tiles != expected_tiles:
            problems.append(
                f"{stored_tiles} tiles stored, a tree of {tree.size} has {expected_tiles}"
            )
        if head.size != tree.size or head.root_hash != tree.root():
            problems.append(f"the head (size {head.size}) does not match the entries ({tree.size})")
    return report


def _next_checkpoint(checkpoints, tree: CompactRange, verifier: Verifier, report: VerifyReport):
    for checkpoint in checkpoints:
        report.checkpoints += 1
        try:
            body, _ = open_checkpoint(checkpoint.note, origin=verifier.name, verifier=verifier)
        except (NoteError, ValueError) as exc:
            report.problems.append(f"checkpoint {checkpoint.size}: signature invalid ({exc})")
            continue
        if body.size != checkpoint.size or body.root_hash != checkpoint.root_hash:
            report.problems.append(f"checkpoint {checkpoint.size}: note and row disagree")
        if checkpoint.size == 0:
            _check_root(checkpoint, EMPTY_ROOT, report)
            continue
        if checkpoint.size < tree.size:  # pragma: no cover - sizes are unique and sorted
            continue
        return checkpoint
    return None


def _check_root(checkpoint: Checkpoint, root: bytes, report: VerifyReport) -> None:
    if checkpoint.root_hash != root:
        report.problems.append(
            f"checkpoint {checkpoint.size}: signed root differs from the root of the stored "
            "entries (an entry was changed, dropped or reordered)"
        )


def _check_tiles(
    db: Session,
    old_size: int,
    leaves: list[bytes],
    partial: dict[tuple[int, int], bytes],
    report: VerifyReport,
) -> None:
    if not leaves:
        return
    updated = new_tile_contents(old_size, leaves, get_tile=lambda lv, ix: partial[(lv, ix)])
    for key, data in updated.items():
        if len(data) == TILE_WIDTH * 32:
            partial.pop(key, None)
            _compare_tile(db, *key, data, report)
        else:
            partial[key] = data


def _compare_tile(db: Session, level: int, index: int, data: bytes, report: VerifyReport) -> None:
    stored = db.execute(
        select(Tile.hashes, Tile.inner).where(Tile.level == level, Tile.idx == index)
    ).first()
    report.tiles += 1
    if stored is None or stored[0] != data:
        report.problems.append(f"tile {level}/{index} differs from the hashes of its entries")
        return
    full = len(data) == TILE_WIDTH * 32
    if stored[1] != (inner_hashes(data) if full else None):
        report.problems.append(f"tile {level}/{index}: its stored inner hashes are wrong")
