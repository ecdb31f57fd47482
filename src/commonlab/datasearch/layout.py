"""How an exact-match index lies on disk: its files, its manifest and their limits.

An index is a directory of shards and one `manifest.json`, written last, so a directory
without a manifest is an index still being built (or one whose build failed). Each shard
holds at most 2**24 token positions, so a suffix pointer fits in 3 bytes:

    shard-NNNNN.tokens   the shard's tokens, big-endian uint16, SEPARATOR between records
    shard-NNNNN.sa       the suffix array: token positions in suffix order, 3 bytes each
                         (little-endian); positions of separators are left out
    shard-NNNNN.offsets  where each record starts in the shard, uint32 little-endian

so an index takes 5 bytes per token, plus 2 for each record's separator and 4 for its
offset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from commonlab.errors import InvalidInput, NotFound

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MAX_SHARD_POSITIONS",
    "MAX_VOCAB_SIZE",
    "OFFSET_DTYPE",
    "POINTER_BYTES",
    "SEPARATOR",
    "TOKEN_DTYPE",
    "Manifest",
    "ShardInfo",
    "read_manifest",
    "shard_files",
    "write_manifest",
]

FORMAT = "commonlab-datasearch-exact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# Big-endian, so the shard's bytes sort as its tokens do: divsufsort sorts bytes, and a query
# compares against a slice of those same bytes.
TOKEN_DTYPE = np.dtype(">u2")
# The largest id a uint16 holds marks the end of a record; no query may contain it, so no
# match runs from one record into the next.
SEPARATOR = 0xFFFF
MAX_VOCAB_SIZE = SEPARATOR  # ids 0 .. 65534
POINTER_BYTES = 3
MAX_SHARD_POSITIONS = 1 << (8 * POINTER_BYTES)
OFFSET_DTYPE = np.dtype("<u4")


@dataclass(frozen=True)
class ShardInfo:
    name: str
    tokens: int  # tokens of records, separators not counted
    positions: int  # tokens + separators: the length of the tokens file, in tokens
    records: int
    first_record: int  # the index's number for the shard's first record
    bytes: int  # of its three files


@dataclass(frozen=True)
class Manifest:
    vocab_size: int
    max_shard_positions: int
    shards: tuple[ShardInfo, ...]
    format: str = FORMAT
    version: int = FORMAT_VERSION

    @property
    def tokens(self) -> int:
        return sum(shard.tokens for shard in self.shards)

    @property
    def records(self) -> int:
        return sum(shard.records for shard in self.shards)

    @property
    def bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens if self.tokens else 0.0


def shard_files(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """The tokens, suffix-array and offsets files of shard `name`."""
    return (
        directory / f"{name}.tokens",
        directory / f"{name}.sa",
        directory / f"{name}.offsets",
    )


def write_manifest(directory: Path, manifest: Manifest) -> None:
    document = asdict(manifest)
    document["shards"] = [asdict(shard) for shard in manifest.shards]
    # The totals are derived, but a reader of the file (a person, the portal) wants them.
    document |= {"tokens": manifest.tokens, "records": manifest.records, "bytes": manifest.bytes}
    partial = directory / (MANIFEST + ".partial")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    partial.replace(directory / MANIFEST)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise NotFound(
            f"{directory} holds no {MANIFEST}: the index is still being built, its build "
            "failed, or this is not an index directory"
        )
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
        raise InvalidInput(
            f"{path}: format {document.get('format')!r} version {document.get('version')!r}; "
            f"this commonlab reads {FORMAT!r} version {FORMAT_VERSION}: rebuild the index"
        )
    shards = tuple(ShardInfo(**shard) for shard in document["shards"])
    for shard in shards:
        _check_sizes(directory, shard)
    return Manifest(
        vocab_size=document["vocab_size"],
        max_shard_positions=document["max_shard_positions"],
        shards=shards,
    )


def _check_sizes(directory: Path, shard: ShardInfo) -> None:
    expected = (
        shard.positions * TOKEN_DTYPE.itemsize,
        shard.tokens * POINTER_BYTES,
        shard.records * OFFSET_DTYPE.itemsize,
    )
    for path, size in zip(shard_files(directory, shard.name), expected, strict=True):
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            raise InvalidInput(
                f"{path}: {'missing' if actual is None else f'{actual} bytes'}, the manifest "
                f"says {size}: the index is damaged; rebuild it"
            )
