"""Tracing finds the spans a scan of the records would, maximal, ranked rarest first, in at
most 2 x len(ids) count queries; merging character spans keeps the maximal ones.

Spans are checked against a brute force that tries every substring of the output against
the records, on seeded random outputs over small alphabets (many matches, many repeats).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from commonlab.datasearch import ExactIndex, build_index
from commonlab.datasearch.trace import (
    MAX_MIN_TOKENS,
    MAX_SPANS,
    MAX_TRACE_TOKENS,
    CharSpan,
    RankedSpan,
    Span,
    maximal_spans,
    merge_char_spans,
    rank_spans,
    trace,
)
from commonlab.errors import InvalidInput

Records = list[list[int]]


def occurs(records: Records, query: Sequence[int]) -> int:
    query = list(query)
    return sum(
        record[offset : offset + len(query)] == query
        for record in records
        for offset in range(len(record) - len(query) + 1)
    )


def brute_spans(records: Records, ids: Sequence[int], min_tokens: int) -> list[Span]:
    """Every substring that occurs and is inside no longer one that occurs."""
    found = {
        (start, end): occurs(records, ids[start:end])
        for start in range(len(ids))
        for end in range(start + 1, len(ids) + 1)
    }
    found = {span: count for span, count in found.items() if count}
    maximal = [
        (start, end)
        for start, end in found
        if not any(s <= start and end <= e and (s, e) != (start, end) for s, e in found)
    ]
    return [
        Span(start=start, end=end, count=found[start, end])
        for start, end in sorted(maximal)
        if end - start >= min_tokens
    ]


class CountingIndex:
    """An index that counts the count queries made of it."""

    def __init__(self, index: ExactIndex) -> None:
        self.index = index
        self.manifest = index.manifest
        self.queries = 0

    def count(self, query: Sequence[int] | np.ndarray) -> int:
        self.queries += 1
        return self.index.count(query)


def open_index(directory: Path, records: Records, *, vocab_size: int) -> ExactIndex:
    build_index(records, directory, vocab_size=vocab_size)
    return ExactIndex(directory)


@pytest.mark.parametrize("seed", range(40))
def test_spans_match_brute_force_and_stay_within_the_query_budget(
    tmp_path: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    alphabet = int(rng.integers(2, 6))
    records = [
        [int(t) for t in rng.integers(0, alphabet, size=int(rng.integers(0, 30)))]
        for _ in range(int(rng.integers(1, 8)))
    ]
    # Outputs that copy pieces of the records, so that long spans occur, then random tokens
    # (some outside every record) between them.
    pieces = []
    for _ in range(4):
        record = records[int(rng.integers(0, len(records)))]
        start = int(rng.integers(0, len(record) + 1))
        pieces += record[start : start + int(rng.integers(0, 10))]
        pieces += [int(t) for t in rng.integers(0, alphabet + 1, size=int(rng.integers(0, 3)))]
    with open_index(tmp_path, records, vocab_size=alphabet + 1) as index:
        counting = CountingIndex(index)
        for min_tokens in (1, 3):
            counting.queries = 0
            spans = maximal_spans(counting, pieces, min_tokens=min_tokens)
            assert spans == brute_spans(records, pieces, min_tokens)
            assert counting.queries <= 2 * len(pieces)


def test_a_copied_passage_is_one_maximal_span(tmp_path: Path) -> None:
    records = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 9, 9]]
    output = [0, 0, 3, 4, 5, 6, 7, 0, 9, 9]
    with open_index(tmp_path, records, vocab_size=10) as index:
        assert maximal_spans(index, output, min_tokens=2) == [
            Span(start=2, end=7, count=1),
            Span(start=8, end=10, count=2),  # 9 9 occurs twice, overlapping
        ]
        assert maximal_spans(index, output, min_tokens=3) == [Span(start=2, end=7, count=1)]
        # A short maximal span is dropped, not replaced by its pieces.
        assert maximal_spans(index, output, min_tokens=6) == []
        assert maximal_spans(index, [], min_tokens=1) == []


def test_spans_of_rare_tokens_rank_above_spans_of_common_ones(tmp_path: Path) -> None:
    common = [1, 2, 3, 4] * 50  # tokens 1..4 occur 50 times each
    rare = [7, 8, 9, 10]  # once each
    records = [common, rare, [5, 6, 1, 2, 3]]
    output = [1, 2, 3, 4, 1, 0, 7, 8, 9, 10, 0, 5, 6, 1, 2]
    with open_index(tmp_path, records, vocab_size=11) as index:
        ranked = trace(index, output, min_tokens=4)
        assert [(span.start, span.end) for span in ranked] == [(6, 10), (11, 15), (0, 5)]
        total = index.manifest.tokens
        assert ranked[0] == RankedSpan(
            start=6, end=10, count=1, log_probability=pytest.approx(4 * math.log(1 / total))
        )
        expected = math.log(1 / total) * 2 + math.log(51 / total) * 2  # 5 6 1 2
        assert ranked[1].log_probability == pytest.approx(expected)
        assert ranked[1].count == 1
        assert ranked[2].count == 49  # 1 2 3 4 1: not at the record's end
        assert [span.start for span in trace(index, output, max_spans=1)] == [6]
        assert ranked == rank_spans(index, output, maximal_spans(index, output))


def test_spans_rank_by_log_probability_then_by_position(tmp_path: Path) -> None:
    records = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    with open_index(tmp_path, records, vocab_size=11) as index:
        spans = [Span(0, 2, 1), Span(4, 6, 1), Span(2, 3, 1), Span(6, 9, 1)]
        ranked = rank_spans(index, list(range(1, 11)), spans)
        assert [(span.start, span.end) for span in ranked] == [(6, 9), (0, 2), (4, 6), (2, 3)]


def test_ranking_asks_once_per_distinct_token(tmp_path: Path) -> None:
    records = [[1, 2, 1, 2, 1, 2, 3]]
    output = [1, 2, 1, 2, 1, 2, 3, 0, 1, 2, 1]
    with open_index(tmp_path, records, vocab_size=4) as index:
        counting = CountingIndex(index)
        spans = maximal_spans(index, output, min_tokens=1)
        rank_spans(counting, output, spans)
        assert counting.queries == 3  # tokens 1, 2, 3
        counting.queries = 0
        trace(counting, output, min_tokens=1)
        assert counting.queries <= 2 * len(output) + 3


def test_bounds_are_refused_with_the_bound_named(tmp_path: Path) -> None:
    with open_index(tmp_path, [[1, 2, 3]], vocab_size=4) as index:
        with pytest.raises(InvalidInput, match=str(MAX_TRACE_TOKENS)):
            trace(index, [1] * (MAX_TRACE_TOKENS + 1))
        for min_tokens in (0, MAX_MIN_TOKENS + 1, True, 2.0):
            with pytest.raises(InvalidInput, match="min_tokens"):
                maximal_spans(index, [1, 2], min_tokens=min_tokens)  # type: ignore[arg-type]
        for max_spans in (0, MAX_SPANS + 1):
            with pytest.raises(InvalidInput, match=f"max_spans.*{MAX_SPANS}"):
                trace(index, [1, 2], max_spans=max_spans)
        with pytest.raises(InvalidInput, match="token id 4 is outside"):
            trace(index, [1, 4])
        with pytest.raises(InvalidInput, match="token id -1 is outside"):
            maximal_spans(index, [-1])
        with pytest.raises(InvalidInput, match="integer token ids"):
            trace(index, [1.5, 2.0])
        with pytest.raises(InvalidInput, match="not within"):
            rank_spans(index, [1, 2], [Span(1, 3, 1)])
        with pytest.raises(InvalidInput, match="does not contain"):
            rank_spans(index, [0, 1], [Span(0, 2, 1)])
        # The longest output allowed is traced.
        assert trace(index, [1, 2, 3] * (MAX_TRACE_TOKENS // 3), min_tokens=3)


def brute_merge(spans: list[tuple[int, int, str]]) -> list[CharSpan[str]]:
    kept = [
        (start, end, payload)
        for start, end, payload in spans
        if not any(s <= start and end <= e and (s, e) != (start, end) for s, e, _ in spans)
    ]
    order = sorted(range(len(kept)), key=lambda i: (kept[i][0], -kept[i][1], i))
    return [CharSpan(start=kept[i][0], end=kept[i][1], payload=kept[i][2]) for i in order]


def test_merging_character_spans_keeps_the_maximal_ones() -> None:
    spans = [(0, 10, "a"), (2, 5, "b"), (8, 14, "c"), (8, 14, "d"), (0, 10, "e"), (12, 14, "f")]
    assert merge_char_spans(spans) == [
        CharSpan(0, 10, "a"),
        CharSpan(0, 10, "e"),
        CharSpan(8, 14, "c"),
        CharSpan(8, 14, "d"),
    ]
    rng = np.random.default_rng(7)
    for _ in range(200):
        random_spans = []
        for number in range(int(rng.integers(0, 9))):
            start = int(rng.integers(0, 8))
            random_spans.append((start, start + int(rng.integers(1, 5)), str(number)))
        assert merge_char_spans(random_spans) == brute_merge(random_spans)
    assert merge_char_spans([]) == []


@pytest.mark.parametrize("span", [(3, 3, "x"), (-1, 2, "x"), (0.0, 2, "x"), (5, 2, "x")])
def test_merging_refuses_offsets_that_are_not_a_span(span: tuple[int, int, str]) -> None:
    with pytest.raises(InvalidInput, match="span 1: offsets"):
        merge_char_spans([(0, 1, "ok"), span])


def test_merging_refuses_too_many_spans() -> None:
    with pytest.raises(InvalidInput, match="more than 100000 spans"):
        merge_char_spans(itertools.repeat((0, 1, None)))
