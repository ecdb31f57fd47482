"""Building an exact-match index from records of token ids, one shard at a time.

Records are packed into shards of at most 2**24 token positions (a record never straddles
two), with a separator between records. Each shard's suffix array comes from divsufsort
over the shard's big-endian bytes, keeping the even byte offsets (the starts of tokens):
since a token's high byte comes first, bytes order suffixes exactly as tokens do. Memory
stays bounded by one shard: under 400 MB for a full one (measured: docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydivsufsort

from commonlab.datasearch.layout import (
    MAX_SHARD_POSITIONS,
    MAX_VOCAB_SIZE,
    OFFSET_DTYPE,
    POINTER_BYTES,
    SEPARATOR,
    TOKEN_DTYPE,
    Manifest,
    ShardInfo,
    shard_files,
    write_manifest,
)
from commonlab.errors import InvalidInput

__all__ = ["BuildProgress", "build_index", "suffix_pointers"]


@dataclass(frozen=True)
class BuildProgress:
    """Where a build stands after a shard is written."""

    shards: int
    records: int
    tokens: int
    bytes: int


def build_index(
    records: Iterable[Sequence[int] | np.ndarray],
    directory: Path,
    *,
    vocab_size: int,
    max_shard_positions: int = MAX_SHARD_POSITIONS,
    progress: Callable[[BuildProgress], None] | None = None,
) -> Manifest:
    """Index `records` (each a sequence of token ids below `vocab_size`) into `directory`,
    which must be empty or absent. Records are numbered from 0 in the order given.

    `max_shard_positions` is for tests: small shards exercise the sum over shards."""
    if not 0 < vocab_size <= MAX_VOCAB_SIZE:
        raise InvalidInput(
            f"vocab_size {vocab_size}: the exact index stores tokens as uint16 and keeps "
            f"{SEPARATOR} as the record separator, so it holds vocabularies of 1 to "
            f"{MAX_VOCAB_SIZE} tokens"
        )
    if not 1 < max_shard_positions <= MAX_SHARD_POSITIONS:
        raise InvalidInput(
            f"max_shard_positions {max_shard_positions}: between 2 and {MAX_SHARD_POSITIONS}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise InvalidInput(f"{directory} is not empty: build an index into a new directory")

    shards: list[ShardInfo] = []
    buffer = np.empty(max_shard_positions, dtype=TOKEN_DTYPE)
    starts: list[int] = []
    used = 0  # positions filled in `buffer`
    record_number = 0

    def flush() -> None:
        shard = _write_shard(
            directory,
            name=f"shard-{len(shards):05d}",
            positions=buffer[:used],
            starts=starts,
            first_record=record_number - len(starts),
        )
        shards.append(shard)
        if progress is not None:
            progress(
                BuildProgress(
                    shards=len(shards),
                    records=record_number,
                    tokens=sum(s.tokens for s in shards),
                    bytes=sum(s.bytes for s in shards),
                )
            )

    for record in records:
        tokens = _checked(record, number=record_number, vocab_size=vocab_size)
        if len(tokens) > max_shard_positions:
            raise InvalidInput(
                f"record {record_number} has {len(tokens)} tokens; a shard holds at most "
                f"{max_shard_positions}: split the record"
            )
        separator = 1 if starts else 0
        if used + separator + len(tokens) > max_shard_positions:
            flush()
            starts, used, separator = [], 0, 0
        if separator:
            buffer[used] = SEPARATOR
            used += 1
        starts.append(used)
        buffer[used : used + len(tokens)] = tokens
        used += len(tokens)
        record_number += 1
    if starts:
        flush()

    manifest = Manifest(
        vocab_size=vocab_size, max_shard_positions=max_shard_positions, shards=tuple(shards)
    )
    write_manifest(directory, manifest)
    return manifest


def suffix_pointers(positions: np.ndarray) -> np.ndarray:
    """The starts of the suffixes of `positions` (big-endian uint16) in sorted order,
    separators left out, as int32 token positions."""
    if len(positions) == 0:
        return np.empty(0, dtype=np.int32)
    byte_order = pydivsufsort.divsufsort(np.ascontiguousarray(positions).view(np.uint8))
    # Odd byte offsets start inside a token; what remains is the token-level suffix array.
    pointers = byte_order[(byte_order & 1) == 0] >> 1
    # No query contains the separator, so no suffix starting with one can match.
    return pointers[positions[pointers] != SEPARATOR]


def _write_shard(
    directory: Path, *, name: str, positions: np.ndarray, starts: list[int], first_record: int
) -> ShardInfo:
    tokens_path, sa_path, offsets_path = shard_files(directory, name)
    positions.tofile(tokens_path)
    pointers = suffix_pointers(positions)
    # Keep the low 3 bytes of each little-endian uint32: positions are below 2**24.
    packed = pointers.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :POINTER_BYTES]
    np.ascontiguousarray(packed).tofile(sa_path)
    np.asarray(starts, dtype=OFFSET_DTYPE).tofile(offsets_path)
    return ShardInfo(
        name=name,
        tokens=len(pointers),
        positions=len(positions),
        records=len(starts),
        first_record=first_record,
        bytes=sum(path.stat().st_size for path in (tokens_path, sa_path, offsets_path)),
    )


def _checked(record: Sequence[int] | np.ndarray, *, number: int, vocab_size: int) -> np.ndarray:
    tokens = np.asarray(record)
    if tokens.ndim != 1 or (len(tokens) and tokens.dtype.kind not in "iu"):
        raise InvalidInput(f"record {number}: expected a flat sequence of integer token ids")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab_size):
        bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0]
        raise InvalidInput(
            f"record {number}: token id {bad} is outside the vocabulary (0 to {vocab_size - 1})"
        )
    return tokens
