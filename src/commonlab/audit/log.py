"""The record as an auditor reads it: the signed checkpoint and the entry bundles.

Only the C2SP tlog-tiles paths are read, from a facility (`/log/...` over HTTP) or from a
mirror of them in a directory (the same paths under it), so an audit needs nothing the
facility could answer differently to different people. Every entry must hash up to the
signed root before a single one is replayed.
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
from commonlab.record.merkle import CompactRange, leaf_hash
from commonlab.record.note import NoteError, Verifier
from commonlab.record.tiles import TILE_WIDTH, decode_entry_bundle, entries_path

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
    """Fetch the signed checkpoint and every entry bundle from `source`; verify; parse.

    The entries are checked by hashing them up to the checkpoint's root (RFC 9162), not
    against the tiles: a tile is not signed, and a leaf tile rewritten together with its
    entries would pass a leaf-by-leaf check under untouched higher tiles. So the audit needs
    no tile at all. Raises LogError on anything that does not verify.
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
    tree = CompactRange()
    entries = []
    for index, body in _entry_bodies(source, size):
        tree.append(leaf_hash(body))
        entries.append(Entry.parse(index, body))
        if index % TILE_WIDTH == TILE_WIDTH - 1 or index == size - 1:
            progress("verifying the entries", index + 1, size)
    if tree.root() != checkpoint.root_hash:
        raise LogError(
            f"the {size} entries do not hash to the signed root: an entry was changed, "
            "dropped or added"
        )
    return VerifiedLog(source.where, size, checkpoint.root_hash, note.decode(), entries)


def _entry_bodies(source: Source, size: int) -> Iterator[tuple[int, bytes]]:
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
        yield from enumerate(bodies, start=first)
