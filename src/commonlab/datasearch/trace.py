"""Tracing a model's output back to its training data, as OLMoTrace does: the longest spans
of the output that occur verbatim in an exact index, ranked rarest first.

Pure over an index's `count`: the caller tokenizes the output with the index's tokenizer,
links each span to its records with `ExactIndex.locate`, and maps spans to characters.
`merge_char_spans` then merges the spans found in several indexes (a model trained on
datasets with different tokenizers) on those character offsets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np

from commonlab.errors import InvalidInput

__all__ = [
    "MAX_CHAR_SPANS",
    "MAX_MIN_TOKENS",
    "MAX_SPANS",
    "MAX_TRACE_TOKENS",
    "CharSpan",
    "CountIndex",
    "RankedSpan",
    "Span",
    "maximal_spans",
    "merge_char_spans",
    "rank_spans",
    "trace",
]

# Bounds on one request: an output of at most MAX_TRACE_TOKENS costs at most 3 x that many
# count queries (see `trace`); at ~1-10 ms a count at 10^9 tokens, a few seconds at worst.
MAX_TRACE_TOKENS = 4096
MAX_MIN_TOKENS = 256
MAX_SPANS = 1000
MAX_CHAR_SPANS = 100_000

Payload = TypeVar("Payload")


class _Sizes(Protocol):
    @property
    def vocab_size(self) -> int: ...

    @property
    def tokens(self) -> int: ...


class CountIndex(Protocol):
    """What tracing needs of an index (an `ExactIndex` is one): its vocabulary size and
    token total, and how often a sequence of token ids occurs."""

    @property
    def manifest(self) -> _Sizes: ...

    def count(self, query: Sequence[int] | np.ndarray) -> int: ...


@dataclass(frozen=True)
class Span:
    """Tokens [start, end) of the output occur verbatim `count` times in the index."""

    start: int
    end: int
    count: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class RankedSpan:
    """A span with its unigram log-probability (natural log): the sum over its tokens of
    log(count of the token / tokens in the index). Lower is rarer."""

    start: int
    end: int
    count: int
    log_probability: float

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class CharSpan(Generic[Payload]):
    """A span on the characters of the output, [start, end), with what found it."""

    start: int
    end: int
    payload: Payload


def maximal_spans(index: CountIndex, ids: Sequence[int], *, min_tokens: int = 4) -> list[Span]:
    """The maximal spans of `ids` that occur in the index: each occurs, and no longer
    occurring span of `ids` contains it. Spans shorter than `min_tokens` are left out
    (after maximality: a short maximal span is not replaced by its pieces). In output order.

    At most 2 x len(ids) count queries: if ids[i:j] occurs, so does ids[i+1:j], so the
    longest match from i+1 ends no earlier than the one from i. Each query either extends
    the current match by a token (at most len(ids) times in all) or ends the match from one
    start (once per start).
    """
    tokens = _checked_ids(index, ids)
    _check_bound("min_tokens", min_tokens, 1, MAX_MIN_TOKENS)
    spans: list[Span] = []
    end = 0  # ids[start:end] occurs: the longest match from `start` found so far
    count = 0  # occurrences of ids[start:end], once it was extended at this start
    for start in range(len(tokens)):
        end = max(end, start)
        extended = False
        while end < len(tokens):
            longer = index.count(tokens[start : end + 1])
            if longer == 0:
                break
            end, count, extended = end + 1, longer, True
        # The match from `start` is contained in the one from start - 1 unless it reaches
        # further right, which only an extension at this start can do.
        if extended and end - start >= min_tokens:
            spans.append(Span(start=start, end=end, count=count))
    return spans


def rank_spans(
    index: CountIndex, ids: Sequence[int], spans: Iterable[Span], *, max_spans: int = 64
) -> list[RankedSpan]:
    """The `max_spans` rarest of `spans` (spans of `ids`), rarest first: by unigram
    log-probability, then longest first, then by position.

    One count query per distinct token in the spans. OLMoTrace ranks the same way and keeps
    about one span per 20 output tokens, and it also drops spans that cut a word or cross a
    sentence boundary; those need the text, which is the caller's (it may pass
    max_spans=ceil(0.05 * len(ids)) to follow it). Ranking by rarity is what keeps spans made
    mostly of common tokens (", and the", "of the") out of the top: nothing else drops them.
    """
    tokens = _checked_ids(index, ids)
    _check_bound("max_spans", max_spans, 1, MAX_SPANS)
    total = index.manifest.tokens
    unigram_counts: dict[int, int] = {}
    ranked = []
    for span in spans:
        if not 0 <= span.start < span.end <= len(tokens):
            raise InvalidInput(
                f"span [{span.start}, {span.end}) is not within the {len(tokens)} tokens traced"
            )
        log_probability = 0.0
        for token in tokens[span.start : span.end].tolist():
            if token not in unigram_counts:
                unigram_counts[token] = index.count([token])
            occurrences = unigram_counts[token]
            if occurrences == 0:
                raise InvalidInput(
                    f"span [{span.start}, {span.end}) holds token {token}, which the index "
                    "does not contain: the span was not found in this index"
                )
            log_probability += math.log(occurrences / total)
        ranked.append(
            RankedSpan(
                start=span.start, end=span.end, count=span.count, log_probability=log_probability
            )
        )
    ranked.sort(key=lambda span: (span.log_probability, -span.length, span.start))
    return ranked[:max_spans]


def trace(
    index: CountIndex, ids: Sequence[int], *, min_tokens: int = 4, max_spans: int = 64
) -> list[RankedSpan]:
    """The maximal spans of `ids` found in the index, at least `min_tokens` long, the
    `max_spans` rarest of them, rarest first (`maximal_spans` then `rank_spans`).

    At most 3 x len(ids) count queries: 2 x len(ids) to find the spans, one per distinct
    token to rank them."""
    _check_bound("max_spans", max_spans, 1, MAX_SPANS)
    spans = maximal_spans(index, ids, min_tokens=min_tokens)
    return rank_spans(index, ids, spans, max_spans=max_spans)


def merge_char_spans(
    spans: Iterable[tuple[int, int, Payload]],
) -> list[CharSpan[Payload]]:
    """The spans not strictly inside another, sorted by start: for spans found in several
    indexes, mapped to character offsets [start, end) of the same output. Spans with the
    same offsets are all kept (the same text found in two datasets), in the order given."""
    items = []
    for number, (start, end, payload) in enumerate(spans):
        if number >= MAX_CHAR_SPANS:
            raise InvalidInput(f"more than {MAX_CHAR_SPANS} spans to merge: merge fewer")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise InvalidInput(
                f"span {number}: offsets ({start!r}, {end!r}) must be integers with "
                "0 <= start < end"
            )
        items.append((start, -end, number, payload))
    # By start, the longer first: a span is inside another iff a span before it (with other
    # offsets) reaches at least as far right.
    items.sort(key=lambda item: item[:3])
    kept: list[CharSpan[Payload]] = []
    reach = -1  # the furthest end among spans with other offsets, before the current group
    group_end, group_reach = None, -1
    for start, negative_end, _, payload in items:
        end = -negative_end
        if (start, end) != group_end:
            reach = max(reach, group_reach)
            group_end, group_reach = (start, end), end
        if end > reach:
            kept.append(CharSpan(start=start, end=end, payload=payload))
    return kept


def _checked_ids(index: CountIndex, ids: Sequence[int]) -> np.ndarray:
    tokens = np.asarray(ids)
    if tokens.ndim != 1:
        raise InvalidInput("the output to trace is one sequence of token ids")
    if len(tokens) > MAX_TRACE_TOKENS:
        raise InvalidInput(
            f"an output of {len(tokens)} tokens: trace at most {MAX_TRACE_TOKENS} at a time"
        )
    if len(tokens) == 0:
        return tokens.astype(np.int64)
    if tokens.dtype.kind not in "iu":
        raise InvalidInput(f"the output to trace is integer token ids, not {tokens.dtype}")
    vocab_size = index.manifest.vocab_size
    outside = (tokens < 0) | (tokens >= vocab_size)
    if outside.any():
        raise InvalidInput(
            f"token id {tokens[outside][0]} is outside the index's vocabulary (0 to "
            f"{vocab_size - 1}): tokenize the output with the index's tokenizer"
        )
    return tokens.astype(np.int64)


def _check_bound(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} {value!r}: give an integer from {low} to {high}")
