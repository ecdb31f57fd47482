"""Querying an exact-match index: count, locate and show in context a sequence of tokens.

Every file is memory-mapped, so opening an index reads only its manifest and a query
touches only the pages its binary searches visit. The hot path compares the query, as
big-endian bytes, with a slice of the shard's bytes: Python compares bytes in C, and
big-endian bytes order as the tokens do. A count is two binary searches per shard (about
2 x 24 steps for a full shard), whatever the number of matches.
"""

from __future__ import annotations

import mmap
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from commonlab.datasearch.layout import (
    OFFSET_DTYPE,
    POINTER_BYTES,
    TOKEN_DTYPE,
    Manifest,
    ShardInfo,
    read_manifest,
    shard_files,
)
from commonlab.errors import InvalidInput

__all__ = ["MAX_CONTEXT_TOKENS", "MAX_HITS", "MAX_QUERY_TOKENS", "Context", "ExactIndex", "Hit"]

# Bounds on what one request may ask, so a query's cost is bounded too.
MAX_QUERY_TOKENS = 4096
MAX_HITS = 10_000
MAX_CONTEXT_TOKENS = 4096


@dataclass(frozen=True)
class Hit:
    """One occurrence: in the index's record `record`, from token `offset` on."""

    record: int
    offset: int
    length: int
    shard: int
    position: int  # of the first token in the shard's tokens file


@dataclass(frozen=True)
class Context:
    """A hit with the tokens around it, cut at the ends of its record."""

    before: tuple[int, ...]
    match: tuple[int, ...]
    after: tuple[int, ...]


class _Shard:
    def __init__(self, directory: Path, info: ShardInfo, *, populate: bool) -> None:
        self.info = info
        self.tokens, self.pointers, self.offsets = (
            _map(path, populate=populate) for path in shard_files(directory, info.name)
        )

    def close(self) -> None:
        for mapped in (self.tokens, self.pointers, self.offsets):
            if isinstance(mapped, mmap.mmap):
                mapped.close()

    def suffix_range(self, key: bytes) -> tuple[int, int]:
        """The suffixes, as [first, end) in suffix order, that start with `key`."""
        tokens, pointers, width = self.tokens, self.pointers, len(key)
        from_bytes = int.from_bytes
        low, high = 0, self.info.tokens
        while low < high:
            middle = (low + high) >> 1
            at = from_bytes(pointers[3 * middle : 3 * middle + 3], "little") << 1
            prefix = tokens[at : at + width]
            if prefix < key:
                low = middle + 1
            elif prefix > key:
                high = middle
            else:
                # `middle` matches: the first match is in [low, middle], the end in
                # (middle, high]. Two plain searches finish the job.
                first, end = low, middle
                while first < end:
                    probe = (first + end) >> 1
                    at = from_bytes(pointers[3 * probe : 3 * probe + 3], "little") << 1
                    if tokens[at : at + width] < key:
                        first = probe + 1
                    else:
                        end = probe
                start, end = middle + 1, high
                while start < end:
                    probe = (start + end) >> 1
                    at = from_bytes(pointers[3 * probe : 3 * probe + 3], "little") << 1
                    if tokens[at : at + width] > key:
                        end = probe
                    else:
                        start = probe + 1
                return first, start
        return low, low

    def positions(self, first: int, end: int) -> np.ndarray:
        """Token positions of suffixes [first, end), in suffix order."""
        raw = (
            np.frombuffer(
                self.pointers,
                dtype=np.uint8,
                count=(end - first) * POINTER_BYTES,
                offset=first * POINTER_BYTES,
            )
            .reshape(-1, POINTER_BYTES)
            .astype(np.int64)
        )
        return raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)

    def starts(self) -> np.ndarray:
        return np.frombuffer(self.offsets, dtype=OFFSET_DTYPE, count=self.info.records)

    def record_bounds(self, record_in_shard: int) -> tuple[int, int]:
        """Where a record's tokens begin and end in the shard (its separator excluded)."""
        starts = self.starts()
        start = int(starts[record_in_shard])
        if record_in_shard + 1 < self.info.records:
            return start, int(starts[record_in_shard + 1]) - 1
        return start, self.info.positions

    def token_slice(self, start: int, end: int) -> tuple[int, ...]:
        array = np.frombuffer(self.tokens, dtype=TOKEN_DTYPE, count=self.info.positions)
        return tuple(array[start:end].tolist())


class ExactIndex:
    """An index built by `build_index`, opened for queries. Use as a context manager (or
    call `close`) to unmap its files.

    `populate` maps every page when the index opens (and reads it, if it is not in the page
    cache): a long-lived server pays that once, instead of each query paying a page fault
    for each page its searches touch first (most of a count's time at 10^9 tokens)."""

    def __init__(self, directory: Path, *, populate: bool = False) -> None:
        self.directory = directory
        self.manifest: Manifest = read_manifest(directory)
        self._shards = [_Shard(directory, info, populate=populate) for info in self.manifest.shards]
        self._first_records = [info.first_record for info in self.manifest.shards]

    def __enter__(self) -> ExactIndex:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for shard in self._shards:
            shard.close()

    def count(self, query: Sequence[int] | np.ndarray) -> int:
        """How many times `query` occurs, counting overlapping occurrences."""
        key = self._key(query)
        total = 0
        for shard in self._shards:
            first, end = shard.suffix_range(key)
            total += end - first
        return total

    def locate(self, query: Sequence[int] | np.ndarray, *, limit: int = 100) -> list[Hit]:
        """Up to `limit` occurrences of `query`, from the first shards on (a shard's hits in
        no particular order), sorted by record and offset."""
        if not 0 < limit <= MAX_HITS:
            raise InvalidInput(f"limit {limit}: ask for 1 to {MAX_HITS} hits")
        key = self._key(query)
        length = len(key) // TOKEN_DTYPE.itemsize
        hits: list[Hit] = []
        for number, shard in enumerate(self._shards):
            first, end = shard.suffix_range(key)
            end = min(end, first + limit - len(hits))
            if end <= first:
                continue
            positions = shard.positions(first, end)
            starts = shard.starts()
            in_shard = np.searchsorted(starts, positions, side="right") - 1
            hits.extend(
                Hit(
                    record=shard.info.first_record + record,
                    offset=position - int(starts[record]),
                    length=length,
                    shard=number,
                    position=position,
                )
                for record, position in zip(in_shard.tolist(), positions.tolist(), strict=True)
            )
            if len(hits) == limit:
                break
        return sorted(hits, key=lambda hit: (hit.record, hit.offset))

    def context(self, hit: Hit, *, before: int = 20, after: int = 20) -> Context:
        """The hit's tokens with up to `before` tokens before it and `after` after it, all
        from the hit's own record."""
        for name, value in (("before", before), ("after", after)):
            if not 0 <= value <= MAX_CONTEXT_TOKENS:
                raise InvalidInput(f"{name} {value}: ask for 0 to {MAX_CONTEXT_TOKENS} tokens")
        shard = self._shard_of(hit.record)
        start, end = shard.record_bounds(hit.record - shard.info.first_record)
        match_end = hit.position + hit.length
        return Context(
            before=shard.token_slice(max(start, hit.position - before), hit.position),
            match=shard.token_slice(hit.position, match_end),
            after=shard.token_slice(match_end, min(end, match_end + after)),
        )

    def record(self, number: int) -> tuple[int, ...]:
        """The tokens of record `number` (numbered from 0 in the order they were built)."""
        shard = self._shard_of(number)
        return shard.token_slice(*shard.record_bounds(number - shard.info.first_record))

    def _shard_of(self, record: int) -> _Shard:
        if not 0 <= record < self.manifest.records:
            raise InvalidInput(
                f"record {record}: the index holds records 0 to {self.manifest.records - 1}"
            )
        return self._shards[bisect_right(self._first_records, record) - 1]

    def _key(self, query: Sequence[int] | np.ndarray) -> bytes:
        tokens = np.asarray(query)
        if tokens.ndim != 1 or len(tokens) == 0:
            raise InvalidInput("an empty query matches everywhere: give one token id or more")
        if tokens.dtype.kind not in "iu":
            raise InvalidInput(f"a query is a sequence of integer token ids, not {tokens.dtype}")
        if len(tokens) > MAX_QUERY_TOKENS:
            raise InvalidInput(
                f"a query of {len(tokens)} tokens: the longest one may ask is {MAX_QUERY_TOKENS}"
            )
        vocab_size = self.manifest.vocab_size
        if tokens.min() < 0 or tokens.max() >= vocab_size:
            bad = tokens[(tokens < 0) | (tokens >= vocab_size)][0]
            raise InvalidInput(
                f"token id {bad} is outside the index's vocabulary (0 to {vocab_size - 1})"
            )
        return tokens.astype(TOKEN_DTYPE).tobytes()


def _map(path: Path, *, populate: bool) -> mmap.mmap | bytes:
    with path.open("rb") as file:
        # mmap refuses an empty file; an empty shard file reads as no bytes.
        if path.stat().st_size == 0:
            return b""
        flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if populate else 0)
        return mmap.mmap(file.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
