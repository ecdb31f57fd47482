"""The record as an auditor reads it: the signed checkpoint, the tiles and the entry bundles.

Only the C2SP tlog-tiles paths are read, from a facility (`/log/...` over HTTP) or from a
mirror of them in a directory (the same paths under it), so an audit needs nothing the
facility could answer differently to different people. The tiles must hash to the signed
root, and every entry to its leaf, before a single entry is replayed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from commonlab.record.checkpoint import open_checkpoint
from commonlab.record.merkle import leaf_hash, tree_root
from commonlab.record.note import NoteError, Verifier
from commonlab.record.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_entry_bundle,
    entries_path,
    tile_path,
)

__all__ = [
    "CURRENT_SCHEMA",
    "DirectorySource",
    "Entry",
    "HttpSource",
    "LogError",
    "Progress",
    "Source",
    "VerifiedLog",
    "quiet",
    "read_log",
]

# Entries written before `schema` was in the envelope are schema 1 (see docs/record.md).
CURRENT_SCHEMA = 2

# What a long step has done so far: (what, done, total), for a progress bar.
Progress = Callable[[str, int, int], None]


def quiet(what: str, done: int, total: int) -> None:
    """A Progress that shows nothing."""


class LogError(Exception):
    """The log could not be read, or does not verify: nothing may be replayed from it."""


class Source(Protocol):
    """Where the tiles come from; `get` takes a path relative to the log's root."""

    where: str

    def get(self, path: str) -> bytes: ...


@dataclass
class HttpSource:
    """A facility's `/log/` over HTTP (`url` is the facility's base URL)."""

    url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    @property
    def where(self) -> str:
        return self.url.rstrip("/") + "/log"

    def get(self, path: str) -> bytes:
        target = f"{self.where}/{path}"
        try:
            response = self.http.get(target)
        except httpx.HTTPError as exc:
            raise LogError(f"{target} did not answer ({exc})") from None
        if response.status_code != 200:
            raise LogError(f"GET {target}: HTTP {response.status_code}")
        return response.content


@dataclass
class DirectorySource:
    """A mirror of the tiles: `checkpoint`, `tile/...` under `root`, as the log serves them."""

    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def get(self, path: str) -> bytes:
        target = self.root / path
        try:
            return target.read_bytes()
        except OSError as exc:
            raise LogError(f"the mirror has no {path} ({exc.strerror})") from None


@dataclass(frozen=True)
class Entry:
    """One record entry, as written (its `data` in clear, commitments as {"commitment": …})."""

    index: int
    type: str
    time: datetime
    actor: dict[str, str]
    subject: str
    data: dict[str, Any]
    schema: int
    policy_set: str | None

    @property
    def day(self) -> date:
        return self.time.date()

    @property
    def subject_id(self) -> str:
        """What follows the subject's kind: `motion/3` → `3`, `member/IT` → `IT`."""
        return self.subject.partition("/")[2]

    @classmethod
    def parse(cls, index: int, body: bytes) -> Entry:
        try:
            raw = json.loads(body)
            return cls(
                index=index,
                type=raw["type"],
                time=datetime.fromisoformat(raw["time"].replace("Z", "+00:00")).astimezone(UTC),
                actor=raw["actor"],
                subject=raw["subject"],
                data=raw["data"],
                schema=raw.get("schema", 1),
                policy_set=raw.get("policy_set"),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LogError(f"entry {index} is not a record entry ({exc})") from None


@dataclass(frozen=True)
class VerifiedLog:
    """The entries of a checkpoint whose signature, tiles and leaves all verified."""

    where: str
    size: int
    root_hash: bytes
    note: str
    entries: list[Entry]


def read_log(source: Source, verifier_key: str, *, progress: Progress = quiet) -> VerifiedLog:
    """Fetch the checkpoint, tiles and entry bundles from `source`; verify them; parse them.

    Raises LogError on anything that does not verify: a bad signature, tiles that do not
    hash to the signed root, an entry whose hash is not its leaf.
    """
    try:
        verifier = Verifier.from_key(verifier_key)
    except (NoteError, ValueError) as exc:
        raise LogError(f"the verifier key is not a note verifier key ({exc})") from None
    note = source.get("checkpoint")
    try:
        checkpoint, _ = open_checkpoint(note, origin=verifier.name, verifier=verifier)
    except (NoteError, ValueError) as exc:
        raise LogError(
            f"the checkpoint at {source.where} is not signed by the key ({exc})"
        ) from None
    size = checkpoint.size
    reader = TileHashReader(_tile_getter(source, size))
    try:
        root = tree_root(size, reader)
    except (KeyError, ValueError) as exc:
        raise LogError(f"the tiles at size {size} are incomplete ({exc})") from None
    if root != checkpoint.root_hash:
        raise LogError(f"the tiles do not hash to the signed root at size {size}")
    entries = []
    for index, body in _entry_bodies(source, size, reader):
        entries.append(Entry.parse(index, body))
        if index % TILE_WIDTH == TILE_WIDTH - 1 or index == size - 1:
            progress("verifying the entries", index + 1, size)
    return VerifiedLog(source.where, size, root, note.decode(), entries)


def _tile_getter(source: Source, size: int):
    def get_tile(level: int, index: int) -> bytes:
        hashes_at_level = size >> (TILE_HEIGHT * level)
        width = min(TILE_WIDTH, hashes_at_level - index * TILE_WIDTH)
        if width <= 0:
            raise KeyError(f"tile {level}/{index} is beyond tree size {size}")
        data = source.get(tile_path(level, index, width))
        if len(data) != width * 32:
            raise LogError(f"tile {level}/{index} has {len(data)} bytes, not {width * 32}")
        return data

    return get_tile


def _entry_bodies(source: Source, size: int, reader: TileHashReader) -> Iterator[tuple[int, bytes]]:
    for bundle in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
        width = min(TILE_WIDTH, size - bundle * TILE_WIDTH)
        first = bundle * TILE_WIDTH
        try:
            bundle_bytes = source.get(entries_path(bundle, width))
        except LogError as exc:
            raise LogError(
                f"entries {first}..{first + width - 1} are missing though the signed "
                f"checkpoint counts {size} entries ({exc})"
            ) from None
        try:
            bodies = decode_entry_bundle(bundle_bytes)
        except ValueError as exc:
            raise LogError(f"entry bundle {bundle} is not an entry bundle ({exc})") from None
        if len(bodies) != width:
            raise LogError(f"entry bundle {bundle} has {len(bodies)} entries, not {width}")
        for offset, body in enumerate(bodies):
            index = first + offset
            if leaf_hash(body) != reader.read(0, index):
                raise LogError(f"entry {index} does not hash to its leaf in the tiles")
            yield index, body
