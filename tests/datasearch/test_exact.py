"""The exact index answers as a scan of the records would: counts, locations, context.

Every query is checked against a brute-force scan of the same records, on random and on
repetitive data, in one shard and in many tiny ones; ids are drawn across byte boundaries
(255/256, 65279, 65534) where a wrong byte order would sort them wrongly.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonlab.datasearch import MAX_VOCAB_SIZE, BuildProgress, ExactIndex, Hit, build_index
from commonlab.datasearch.build import suffix_pointers
from commonlab.datasearch.exact import MAX_QUERY_TOKENS
from commonlab.datasearch.layout import SEPARATOR, TOKEN_DTYPE, shard_files
from commonlab.errors import InvalidInput, NotFound

Records = list[list[int]]


def scan(records: Records, query: Sequence[int]) -> list[tuple[int, int]]:
    """Every (record, offset) where `query` occurs, by looking at each position."""
    query = list(query)
    return [
        (number, offset)
        for number, record in enumerate(records)
        for offset in range(len(record) - len(query) + 1)
        if record[offset : offset + len(query)] == query
    ]


def build(directory: Path, records: Records, *, vocab_size: int, shard: int) -> ExactIndex:
    build_index(records, directory, vocab_size=vocab_size, max_shard_positions=shard)
    return ExactIndex(directory)


def random_records(rng: np.random.Generator, alphabet: Sequence[int], count: int) -> Records:
    return [
        [int(token) for token in rng.choice(alphabet, size=int(rng.integers(0, 40)))]
        for _ in range(count)
    ]


def repetitive_records(rng: np.random.Generator, alphabet: Sequence[int], count: int) -> Records:
    """Records made of a few repeated phrases: long shared prefixes, many equal suffixes."""
    phrases = [list(rng.choice(alphabet, size=int(rng.integers(1, 6)))) for _ in range(4)]
    return [
        [int(t) for _ in range(int(rng.integers(0, 8))) for t in phrases[rng.integers(0, 4)]]
        for _ in range(count)
    ]


def queries(rng: np.random.Generator, records: Records, alphabet: Sequence[int]) -> list[list[int]]:
    """Queries drawn from the records (they hit), random ones (mostly absent), every single
    token, ones longer than any record, and ones spanning the end of a record."""
    drawn = []
    nonempty = [record for record in records if record]
    for _ in range(150):
        record = nonempty[rng.integers(0, len(nonempty))]
        start = int(rng.integers(0, len(record)))
        drawn.append(record[start : start + int(rng.integers(1, 12))])
    drawn += [
        [int(t) for t in rng.choice(alphabet, size=int(rng.integers(1, 6)))] for _ in range(100)
    ]
    drawn += [[token] for token in alphabet]
    longest = max(len(record) for record in records)
    drawn += [nonempty[0] * (longest // len(nonempty[0]) + 1), [alphabet[0]] * (longest + 1)]
    for before, after in itertools.pairwise(records):
        if before and after:
            drawn.append(before[-2:] + after[:2])
    return drawn


# Ids on both sides of each byte boundary, and the largest id below the separator.
ALPHABET = [0, 1, 255, 256, 257, 65279, 65280, 65534]


@pytest.mark.parametrize("shape", [random_records, repetitive_records])
@pytest.mark.parametrize("shard", [64, 1 << 24])
def test_counts_and_locations_are_those_of_a_scan(tmp_path: Path, shape, shard: int) -> None:
    rng = np.random.default_rng(18)
    records = shape(rng, ALPHABET, 300)
    with build(tmp_path / "index", records, vocab_size=MAX_VOCAB_SIZE, shard=shard) as index:
        assert index.manifest.tokens == sum(len(record) for record in records)
        if shard == 64:
            assert len(index.manifest.shards) > 20
        checked_a_hit = checked_a_miss = False
        for query in queries(rng, records, ALPHABET):
            expected = scan(records, query)
            assert index.count(query) == len(expected), query
            hits = index.locate(query, limit=10_000)
            assert [(hit.record, hit.offset) for hit in hits] == expected, query
            checked_a_hit |= bool(expected)
            checked_a_miss |= not expected
        assert checked_a_hit and checked_a_miss
    # Mapping every page up front changes nothing but when the pages are read.
    sample = queries(rng, records, ALPHABET)[:50]
    with ExactIndex(tmp_path / "index", populate=True) as populated:
        assert [populated.count(q) for q in sample] == [len(scan(records, q)) for q in sample]


def test_the_suffix_array_is_in_token_order() -> None:
    """Any one byte order would group equal prefixes; big-endian also sorts the suffixes as
    their tokens sort, which readers of the format (next-token counts, say) rely on."""
    rng = np.random.default_rng(7)
    tokens = [int(t) for t in rng.choice(ALPHABET, size=400)] + [SEPARATOR] + [1, 256, 1]
    pointers = suffix_pointers(np.asarray(tokens, dtype=TOKEN_DTYPE))
    by_tokens = sorted(
        (p for p in range(len(tokens)) if tokens[p] != SEPARATOR), key=lambda p: tokens[p:]
    )
    assert pointers.tolist() == by_tokens


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.lists(st.sampled_from(ALPHABET), max_size=12), max_size=25),
    query=st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=4),
    shard=st.integers(min_value=13, max_value=40),
)
def test_any_records_any_query(records: Records, query: list[int], shard: int) -> None:
    with (
        tempfile.TemporaryDirectory() as directory,
        build(Path(directory) / "index", records, vocab_size=65535, shard=shard) as index,
    ):
        expected = scan(records, query)
        assert index.count(query) == len(expected)
        assert [(h.record, h.offset) for h in index.locate(query, limit=1000)] == expected


def test_no_match_runs_from_one_record_into_the_next(tmp_path: Path) -> None:
    with build(tmp_path / "index", [[1, 2, 3], [4, 5, 6]], vocab_size=10, shard=64) as index:
        assert index.count([3, 4]) == 0
        assert index.count([2, 3]) == 1
        assert index.count([4, 5, 6]) == 1
        assert index.count([1, 2, 3, 4, 5, 6]) == 0


def test_records_are_packed_whole_into_several_shards(tmp_path: Path) -> None:
    records = [[7] * 5, [8] * 5, [7, 8], [9] * 6]
    seen: list[BuildProgress] = []
    manifest = build_index(
        records, tmp_path / "index", vocab_size=10, max_shard_positions=8, progress=seen.append
    )
    # [7]*5 alone (with a separator [8]*5 would need 11 positions); [8]*5, separator, [7, 8]
    # fill the second exactly; [9]*6 starts the third.
    assert [(shard.records, shard.first_record) for shard in manifest.shards] == [
        (1, 0),
        (2, 1),
        (1, 3),
    ]
    assert [progress.records for progress in seen] == [1, 3, 4]
    assert seen[-1].tokens == 18 and seen[-1].bytes == manifest.bytes
    with ExactIndex(tmp_path / "index") as index:
        assert [index.record(number) for number in range(4)] == [tuple(r) for r in records]
        assert index.count([8]) == 6
        assert index.count([8, 8, 8, 8, 8, 7]) == 0


def test_context_stays_inside_the_hit_record(tmp_path: Path) -> None:
    records = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]
    with build(tmp_path / "index", records, vocab_size=10, shard=64) as index:
        [hit] = index.locate([5, 6])
        assert hit == Hit(record=1, offset=1, length=2, shard=0, position=5)
        wide = index.context(hit, before=10, after=10)
        assert (wide.before, wide.match, wide.after) == ((4,), (5, 6), (7, 8))
        narrow = index.context(hit, before=0, after=1)
        assert (narrow.before, narrow.match, narrow.after) == ((), (5, 6), (7,))


def test_locate_stops_at_the_limit(tmp_path: Path) -> None:
    records = [[3] * 10 for _ in range(10)]
    with build(tmp_path / "index", records, vocab_size=4, shard=25) as index:
        assert index.count([3, 3]) == 90
        assert len(index.locate([3, 3], limit=7)) == 7
        assert len(index.locate([3, 3], limit=90)) == 90


def test_an_empty_index_finds_nothing(tmp_path: Path) -> None:
    manifest = build_index([], tmp_path / "none", vocab_size=10)
    assert (manifest.shards, manifest.tokens, manifest.bytes_per_token) == ((), 0, 0.0)
    with ExactIndex(tmp_path / "none") as index:
        assert index.count([1]) == 0 and index.locate([1]) == []
    # Records without tokens are numbered all the same.
    with build(tmp_path / "blank", [[], [], [2]], vocab_size=10, shard=64) as index:
        assert index.manifest.records == 3 and index.manifest.tokens == 1
        assert [(hit.record, hit.offset) for hit in index.locate([2])] == [(2, 0)]
        assert index.record(0) == ()
    with build(tmp_path / "one-blank", [[]], vocab_size=10, shard=64) as index:
        assert index.count([2]) == 0 and index.record(0) == ()


@pytest.mark.parametrize(
    ("records", "vocab_size", "message"),
    [
        ([[1, 2, 10]], 10, "record 0: token id 10 is outside the vocabulary (0 to 9)"),
        ([[1], [-1]], 10, "record 1: token id -1 is outside the vocabulary"),
        ([[1.5]], 10, "record 0: expected a flat sequence of integer token ids"),
        ([[1]], 65536, "vocab_size 65536: the exact index stores tokens as uint16"),
        ([[1] * 65], 10, "record 0 has 65 tokens; a shard holds at most 64: split the record"),
    ],
)
def test_bad_records_are_refused(tmp_path: Path, records, vocab_size: int, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        build_index(records, tmp_path / "index", vocab_size=vocab_size, max_shard_positions=64)
    assert message in str(refused.value)


def test_an_index_is_built_into_an_empty_directory_only(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="is not empty: build an index into a new directory"):
        build_index([[1]], tmp_path / "taken", vocab_size=10)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([], "an empty query matches everywhere"),
        ([1, 10], "token id 10 is outside the index's vocabulary (0 to 9)"),
        ([-3], "token id -3 is outside"),
        ([0.5], "a query is a sequence of integer token ids"),
        ([1] * (MAX_QUERY_TOKENS + 1), f"the longest one may ask is {MAX_QUERY_TOKENS}"),
    ],
)
def test_bad_queries_are_refused(tmp_path: Path, query, message: str) -> None:
    with build(tmp_path / "index", [[1, 2, 3]], vocab_size=10, shard=64) as index:
        with pytest.raises(InvalidInput) as refused:
            index.count(query)
        assert message in str(refused.value)
        with pytest.raises(InvalidInput, match="limit 0: ask for 1 to"):
            index.locate([1], limit=0)
        with pytest.raises(InvalidInput, match="record 5: the index holds records 0 to 0"):
            index.record(5)


def test_an_unfinished_or_damaged_index_says_so(tmp_path: Path) -> None:
    (tmp_path / "building").mkdir()
    with pytest.raises(NotFound, match="the index is still being built"):
        ExactIndex(tmp_path / "building")
    build_index([[1, 2, 3]], tmp_path / "index", vocab_size=10)
    _, pointers, _ = shard_files(tmp_path / "index", "shard-00000")
    pointers.write_bytes(pointers.read_bytes()[:-1])
    with pytest.raises(InvalidInput, match="8 bytes, the manifest says 9: the index is damaged"):
        ExactIndex(tmp_path / "index")
