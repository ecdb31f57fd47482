"""A mirror of a facility's log in a directory, for `commonlab audit URL --from-tiles DIR`:
the signed checkpoint, every tile and entry bundle it needs, and the verifier key (`key`),
at the same paths the facility serves under `/log/`.

A second run fetches only what is new: a full tile never changes, so one already mirrored is
kept; a partial tile is fetched at its new width and the narrower one removed. Nothing is
trusted because it came from the facility: the new tiles must hash to the signed root, the
new checkpoint must extend the one mirrored before (a consistency proof), and every new entry
must hash to its leaf, before the checkpoint is replaced. So a mirror always holds one
verified checkpoint and exactly what it needs.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from commonlab.audit.log import HttpSource, LogError
from commonlab.record.checkpoint import Checkpoint, open_checkpoint
from commonlab.record.merkle import HASH_SIZE, CompactRange, leaf_hash
from commonlab.record.note import NoteError, Verifier
from commonlab.record.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_entry_bundle,
    entries_path,
    new_tile_contents,
    parse_tile_path,
    tile_path,
    tiles_for_tree,
)

__all__ = ["KEY_FILE", "MirrorReport", "facility_key", "mirror", "needed_paths"]

KEY_FILE = "key"
CHECKPOINT = "checkpoint"

# progress(done, total): files looked at so far, of those the checkpoint needs.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MirrorReport:
    size: int  # entries in the mirrored checkpoint
    previous_size: int | None  # what the mirror held before (None: a new mirror)
    fetched: int  # files downloaded this run
    kept: int  # files already mirrored, not downloaded again
    removed: int  # narrower partial tiles a fuller one replaced


def needed_paths(size: int) -> list[str]:
    """Every tile and entry bundle path a checkpoint of `size` entries needs."""
    tiles = [tile_path(level, index, width) for level, index, width in tiles_for_tree(size)]
    bundles = [
        entries_path(bundle, min(TILE_WIDTH, size - bundle * TILE_WIDTH))
        for bundle in range((size + TILE_WIDTH - 1) // TILE_WIDTH)
    ]
    return tiles + bundles


def mirror(
    url: str,
    directory: Path,
    *,
    verifier_key: str | None = None,
    http: httpx.Client | None = None,
    progress: Progress = lambda done, total: None,
) -> MirrorReport:
    """Bring the mirror in `directory` up to the facility's latest checkpoint.

    The key is `verifier_key`, else the mirror's own `key` file, else the facility's (trusted
    on first use and written to `key`). Raises LogError on anything that does not verify;
    the mirror then still holds its previous checkpoint and what it needs."""
    source = HttpSource(url, http or httpx.Client(timeout=30.0))
    directory.mkdir(parents=True, exist_ok=True)
    key = _key(directory, verifier_key, source)
    verifier = _verifier(key)
    previous = _mirrored_checkpoint(directory, verifier)
    note = source.get(CHECKPOINT)
    checkpoint = _opened(note, verifier, f"the checkpoint at {source.where}")
    if previous is not None and checkpoint.size < previous.size:
        raise LogError(
            f"the facility's log has {checkpoint.size} entries, fewer than the "
            f"{previous.size} this mirror verified: a rollback; the mirror is left as it was"
        )

    needed = needed_paths(checkpoint.size)
    fetched: list[Path] = []
    for done, path in enumerate(needed, start=1):
        target = directory / path
        if not target.is_file():
            _write(target, source.get(path))
            fetched.append(target)
        progress(done, len(needed))
    try:
        _verify(directory, checkpoint, previous)
    except LogError:
        # Files fetched for a checkpoint that does not verify must not be kept as if good.
        for target in fetched:
            target.unlink(missing_ok=True)
        raise
    _write(directory / CHECKPOINT, note)
    if not (directory / KEY_FILE).is_file():
        _write(directory / KEY_FILE, (key + "\n").encode())
    removed = _remove_superseded(directory, set(needed))
    return MirrorReport(
        size=checkpoint.size,
        previous_size=None if previous is None else previous.size,
        fetched=len(fetched),
        kept=len(needed) - len(fetched),
        removed=removed,
    )


def _key(directory: Path, given: str | None, source: HttpSource) -> str:
    kept = directory / KEY_FILE
    mirrored = kept.read_text().strip() if kept.is_file() else None
    if given and mirrored and given != mirrored:
        raise LogError(
            f"{kept} holds another verifier key than --key: this is a mirror of another "
            "log; mirror into a new directory"
        )
    if given or mirrored:
        return given or mirrored  # type: ignore[return-value]
    return facility_key(source.url, source.http)


def facility_key(url: str, http: httpx.Client) -> str:
    """The verifier key the facility at `url` states (`/api/v1/record/key`): trusted on first
    use, so whoever pins it should keep it. Raises LogError, in words a person can act on,
    when nothing answers or what answers is no commonlab facility."""
    target = url.rstrip("/") + "/api/v1/record/key"
    try:
        answer = http.get(target)
    except httpx.HTTPError as exc:
        raise LogError(f"{target} did not answer ({exc})") from None
    try:
        answer.raise_for_status()
        return str(answer.json()["verifier_key"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        kind = answer.headers.get("content-type", "nothing").split(";")[0]
        raise LogError(
            f"{url} is not a commonlab facility: GET {target} answered HTTP "
            f"{answer.status_code} ({kind}), not a verifier key (give --key if it is one)"
        ) from None


def _verifier(key: str) -> Verifier:
    try:
        return Verifier.from_key(key)
    except (NoteError, ValueError) as exc:
        raise LogError(f"the verifier key is not a note verifier key ({exc})") from None


def _opened(note: bytes, verifier: Verifier, what: str) -> Checkpoint:
    try:
        checkpoint, _ = open_checkpoint(note, origin=verifier.name, verifier=verifier)
    except (NoteError, ValueError) as exc:
        raise LogError(f"{what} is not signed by the key ({exc})") from None
    return checkpoint


def _mirrored_checkpoint(directory: Path, verifier: Verifier) -> Checkpoint | None:
    path = directory / CHECKPOINT
    if not path.is_file():
        return None
    return _opened(path.read_bytes(), verifier, f"the mirrored checkpoint {path}")


def _verify(directory: Path, new: Checkpoint, old: Checkpoint | None) -> None:
    """What was fetched is what the signed checkpoint says: the new entries hash up to the new
    root from the subtrees verified last time, and every new tile is exactly what those
    entries make. Nothing is taken from a tile on trust: a tile is not signed."""
    first_new = 0 if old is None else old.size
    if old is not None and first_new == new.size and old.root_hash != new.root_hash:
        raise LogError(f"two different trees of size {new.size} were signed: a fork")

    def mirrored(level: int, index: int, size: int) -> bytes:
        width = min(TILE_WIDTH, (size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH)
        return (directory / tile_path(level, index, width)).read_bytes()

    try:
        tree = CompactRange.at(
            first_new, TileHashReader(lambda lv, ix: mirrored(lv, ix, first_new))
        )
    except (KeyError, ValueError, OSError) as exc:
        raise LogError(f"the mirror's tiles at size {first_new} are incomplete ({exc})") from None
    if old is not None and tree.root() != old.root_hash:
        raise LogError(f"the mirror's tiles no longer hash to its checkpoint at size {old.size}")
    leaves = []
    for bundle in range(first_new // TILE_WIDTH, (new.size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, new.size - bundle * TILE_WIDTH)
        try:
            bodies = decode_entry_bundle((directory / entries_path(bundle, width)).read_bytes())
        except ValueError as exc:
            raise LogError(f"entry bundle {bundle} is not an entry bundle ({exc})") from None
        if len(bodies) != width:
            raise LogError(f"entry bundle {bundle} has {len(bodies)} entries, not {width}")
        first = bundle * TILE_WIDTH
        leaves += [leaf_hash(body) for i, body in enumerate(bodies, first) if i >= first_new]
    for leaf in leaves:
        tree.append(leaf)
    if tree.root() != new.root_hash:
        if old is not None:
            raise LogError(
                f"the log of size {new.size} does not extend the one this mirror verified "
                f"at size {old.size} (root {base64.b64encode(old.root_hash).decode()}): a "
                "fork, or entries that do not hash to the signed root"
            )
        raise LogError(f"the entries do not hash to the signed root at size {new.size}")
    made = new_tile_contents(first_new, leaves, get_tile=lambda lv, ix: mirrored(lv, ix, first_new))
    for (level, index), data in made.items():
        path = directory / tile_path(level, index, len(data) // HASH_SIZE)
        if not path.is_file() or path.read_bytes() != data:
            raise LogError(f"tile {level}/{index} is not what the signed entries make")


def _remove_superseded(directory: Path, needed: set[str]) -> int:
    """Remove the partial tiles and bundles a fuller one replaced (what the checkpoint no
    longer needs); full tiles are always needed, so only `.p/` files can go."""
    removed = 0
    for path in (directory / "tile").rglob("*"):
        relative = path.relative_to(directory).as_posix()
        if not path.is_file() or ".p/" not in relative or relative in needed:
            continue
        try:
            parse_tile_path(relative)
        except ValueError:
            continue  # not a tile: not ours to remove
        path.unlink()
        removed += 1
    return removed


def _write(target: Path, data: bytes) -> None:
    # Written whole or not at all: an interrupted run leaves no half tile to be trusted later.
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
