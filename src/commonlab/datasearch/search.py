"""Training-data search use cases: find a passage (verbatim, or near it in meaning) in a
dataset version's records or a model's training data, trace a model's output to the spans
it shares verbatim with that data, and answer whether content was in it, with the evidence.
Every answer honours the deletion list (`targets`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from commonlab.artifacts import service as artifacts
from commonlab.artifacts.service import Registry
from commonlab.datasearch.opened import (
    MAX_QUERY_TOKENS,
    OpenedIndex,
)
from commonlab.datasearch.schemas import (
    MAX_PASSAGE_CHARS,
    MAX_TRACE_CHARS,
    DatasetSearched,
    EvidenceOut,
    HitOut,
    MembershipOut,
    SearchOut,
    SemanticHitOut,
    SemanticOut,
    SpanOut,
    SpanRecordOut,
    TraceOut,
)
from commonlab.datasearch.targets import (
    MAX_CONTEXT_TOKENS,
    MAX_HITS_SHOWN,
    DeletionList,
    Fallback,
    check_text,
    deletion_list,
    fallback_of,
    find,
    nothing_searchable,
    open_index_version,
    record_url,
    status_of,
    targets_of,
    unique,
    variants,
)
from commonlab.errors import InvalidInput
from commonlab.policy.principal import Principal

if TYPE_CHECKING:
    from commonlab.datasearch.exact import Hit


def index_status(
    db: Session, actor: Principal, *, dataset: str | None = None, model: str | None = None
) -> list[DatasetSearched]:
    """The dataset versions a search of `dataset` or `model` would look in (those `actor`
    may read), each with its newest index, or the job building one, or neither."""
    return [status_of(target) for target in targets_of(db, actor, dataset=dataset, model=model)]


# Searching --------------------------------------------------------------------------------------


def _hit_out(
    opened: OpenedIndex, dataset: str, hit: Hit, fallback: Fallback, context: int
) -> HitOut:
    entry = opened.record(hit.record)
    around = opened.exact.context(hit, before=context, after=context)
    return HitOut(
        dataset=dataset,
        file=entry.file,
        record=entry.index,
        source=entry.source or fallback.source,
        license=entry.license or fallback.license,
        before=opened.decode(list(around.before)),
        match=opened.decode(list(around.match)),
        after=opened.decode(list(around.after)),
        url=record_url(dataset, entry.file, entry.index),
    )


def search(
    db: Session,
    actor: Principal,
    registry: Registry,
    *,
    query: str,
    dataset: str | None = None,
    model: str | None = None,
    limit: int = 20,
    context: int = 32,
) -> SearchOut:
    """Every occurrence of `query` in the records of a dataset version, or of the training
    data of a model version, that `actor` may read, less the opted-out ones: counted, and
    the first `limit` shown in context with their records, sources and licences."""
    query = check_text(query, what="the query", at_most=MAX_PASSAGE_CHARS)
    if not 1 <= limit <= MAX_HITS_SHOWN:
        raise InvalidInput(f"limit must be 1 to {MAX_HITS_SHOWN}")
    if not 0 <= context <= MAX_CONTEXT_TOKENS:
        raise InvalidInput(f"context must be 0 to {MAX_CONTEXT_TOKENS} tokens")
    targets = targets_of(db, actor, dataset=dataset, model=model)
    searchable = [t for t in targets if t.index is not None]
    if not searchable:
        raise nothing_searchable(targets, model or dataset or "")
    with db.begin():
        deletion = deletion_list(db, actor)
    statuses, hits = [], []
    count = opted_out = 0
    for target in targets:
        status = status_of(target)
        statuses.append(status)
        if target.index is None:
            continue
        opened = open_index_version(db, actor, registry, target.index)
        found = find(
            opened,
            target.dataset.ref,
            variants(opened, query),
            deletion,
            limit=limit - len(hits),
        )
        status.count = found.count
        count += found.count
        opted_out += found.opted_out
        if found.hits:
            fallback = fallback_of(db, actor, target.dataset.ref)
            hits.extend(
                _hit_out(opened, target.dataset.ref, hit, fallback, context)
                for hit, _ in found.hits
            )
    return SearchOut(query=query, count=count, opted_out=opted_out, datasets=statuses, hits=hits)


def semantic_search(
    db: Session,
    actor: Principal,
    registry: Registry,
    *,
    query: str,
    dataset: str | None = None,
    model: str | None = None,
    limit: int = 10,
) -> SemanticOut:
    """The records nearest in meaning to `query` (all-MiniLM-L6-v2 embeddings in each
    index's ANN index), across the datasets searched, nearest first, less the opted-out
    ones. A dataset whose index has no semantic part says so in its status."""
    query = check_text(query, what="the query", at_most=MAX_PASSAGE_CHARS)
    if not 1 <= limit <= MAX_HITS_SHOWN:
        raise InvalidInput(f"limit must be 1 to {MAX_HITS_SHOWN}")
    targets = targets_of(db, actor, dataset=dataset, model=model)
    if not any(t.index is not None for t in targets):
        raise nothing_searchable(targets, model or dataset or "")
    with db.begin():
        deletion = deletion_list(db, actor)
    statuses, hits = [], []
    opted_out = 0
    for target in targets:
        status = status_of(target)
        statuses.append(status)
        if target.index is None:
            continue
        opened = open_index_version(db, actor, registry, target.index)
        if not opened.has_semantic:
            status.status = "no semantic index"
            continue
        fallback = fallback_of(db, actor, target.dataset.ref)
        # Ask for more than shown: opted-out records are dropped after the search.
        for near in opened.semantic().search(query, k=min(MAX_HITS_SHOWN, limit * 2)):
            entry = opened.record(near.record)
            if deletion.drops(target.dataset.ref, entry):
                opted_out += 1
                continue
            status.count += 1
            hits.append(
                SemanticHitOut(
                    dataset=target.dataset.ref,
                    file=entry.file,
                    record=entry.index,
                    source=entry.source or fallback.source,
                    license=entry.license or fallback.license,
                    score=round(near.score, 4),
                    text=opened.text_of(near.record),
                    url=record_url(target.dataset.ref, entry.file, entry.index),
                )
            )
    hits.sort(key=lambda hit: -hit.score)
    return SemanticOut(query=query, opted_out=opted_out, datasets=statuses, hits=hits[:limit])


# Tracing ----------------------------------------------------------------------------------------


def trace(
    db: Session,
    actor: Principal,
    registry: Registry,
    *,
    model: str,
    text: str,
    min_tokens: int = 6,
    max_spans: int = 20,
    records_per_span: int = 3,
) -> TraceOut:
    """The spans of `text` (a model's output) that occur verbatim in the model's training
    data the asker may read, the rarest first, each with records holding it (opted-out ones
    left out). Spans are found per index (each dataset has its own tokenizer) and merged on
    the text's characters, keeping the longest."""
    # trace needs numpy: loaded where used, so a core install serves the other routes.
    from commonlab.datasearch.trace import trace as trace_spans

    text = check_text(text, what="the text to trace", at_most=MAX_TRACE_CHARS)
    if not 1 <= min_tokens <= 64:
        raise InvalidInput("min_tokens must be 1 to 64")
    if not 1 <= max_spans <= 100:
        raise InvalidInput("max_spans must be 1 to 100")
    targets = targets_of(db, actor, dataset=None, model=model)
    if not any(t.index is not None for t in targets):
        raise nothing_searchable(targets, model)
    with db.begin():
        deletion = deletion_list(db, actor)
    candidates: list[SpanOut] = []
    statuses = []
    for target in targets:
        statuses.append(status_of(target))
        if target.index is None:
            continue
        opened = open_index_version(db, actor, registry, target.index)
        encoding = opened.encode(text)
        ids, offsets = list(encoding.ids), list(encoding.offsets)
        fallback = fallback_of(db, actor, target.dataset.ref)
        for span in trace_spans(
            opened.exact, ids[:MAX_QUERY_TOKENS], min_tokens=min_tokens, max_spans=max_spans
        ):
            start, end = offsets[span.start][0], offsets[span.end - 1][1]
            while start < end and text[start].isspace():
                start += 1
            if _cuts_a_word(text, start, end):
                continue  # as OLMoTrace does: half a word is no evidence of a copied span
            found = find(
                opened,
                target.dataset.ref,
                [ids[span.start : span.end]],
                deletion,
                limit=records_per_span,
            )
            if found.count == 0:
                continue  # every occurrence is opted out
            records = [
                _span_record(opened, target.dataset.ref, hit, fallback) for hit, _ in found.hits
            ]
            candidates.append(
                SpanOut(
                    start=start,
                    end=end,
                    text=text[start:end],
                    count=found.count,
                    log10_probability=round(span.log_probability / math.log(10), 3),
                    records=records,
                )
            )
    return TraceOut(
        model=model, spans=_longest_first_kept(candidates, max_spans), datasets=statuses
    )


def _cuts_a_word(text: str, start: int, end: int) -> bool:
    inside = (start > 0 and text[start - 1].isalnum() and text[start].isalnum()) or (
        end < len(text) and text[end - 1].isalnum() and text[end].isalnum()
    )
    return inside or start >= end


def _span_record(opened: OpenedIndex, dataset: str, hit: Hit, fallback: Fallback) -> SpanRecordOut:
    entry = opened.record(hit.record)
    return SpanRecordOut(
        dataset=dataset,
        file=entry.file,
        record=entry.index,
        source=entry.source or fallback.source,
        license=entry.license or fallback.license,
        url=record_url(dataset, entry.file, entry.index),
    )


def _longest_first_kept(spans: list[SpanOut], at_most: int) -> list[SpanOut]:
    """Spans from several indexes: a span inside a longer one (from another index) is
    dropped; the rest are ranked rarest first."""
    kept: list[SpanOut] = []
    for span in sorted(spans, key=lambda s: (s.start - s.end, s.start)):
        if any(k.start <= span.start and span.end <= k.end for k in kept):
            continue
        kept.append(span)
    return sorted(kept, key=lambda s: (s.log10_probability, s.start))[:at_most]


# Membership -------------------------------------------------------------------------------------


def membership(
    db: Session,
    actor: Principal,
    registry: Registry,
    *,
    model: str | None = None,
    dataset: str | None = None,
    sha256: str | None = None,
    passage: str | None = None,
) -> MembershipOut:
    """Whether a file or record (by SHA-256) or a passage was in a dataset version, or in a
    model version's training data, as far as the asker may read it, with the evidence: the
    dataset versions, files and records. A digest is compared with each file's SHA-256 and
    each indexed record's content digest (`commonlab optout hash`); a passage is searched."""
    if (sha256 is None) == (passage is None):
        raise InvalidInput("give a SHA-256 (sha256=…) or a passage (passage=…), one of them")
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput("sha256 must be 64 hexadecimal digits")
    targets = targets_of(db, actor, dataset=dataset, model=model)
    evidence: list[EvidenceOut] = []
    statuses = []
    for target in targets:
        status = status_of(target)
        statuses.append(status)
        ref = target.dataset.ref
        if sha256 is not None:
            view = artifacts.read_version(db, actor, artifacts.parse_ref(ref))
            evidence.extend(
                EvidenceOut(dataset=ref, file=f.path, record=None, how="file", url=_file_url(ref))
                for f in view.version.files
                if f.sha256 == sha256
            )
        if target.index is None:
            continue
        opened = open_index_version(db, actor, registry, target.index)
        if sha256 is not None:
            matched = opened.records_with_digest(sha256)
            how = "record"
        else:
            text = check_text(passage or "", what="the passage", at_most=MAX_PASSAGE_CHARS)
            found = find(
                opened,
                ref,
                variants(opened, text),
                DeletionList(frozenset(), frozenset()),
                limit=MAX_HITS_SHOWN,
            )
            matched = [opened.record(hit.record) for hit, _ in found.hits]
            status.count = found.count
            how = "passage"
        for entry in unique(matched):
            evidence.append(
                EvidenceOut(
                    dataset=ref,
                    file=entry.file,
                    record=entry.index,
                    how=how,
                    url=record_url(ref, entry.file, entry.index),
                )
            )
    subject = model or dataset or ""
    return MembershipOut(
        subject=subject, member=bool(evidence), evidence=evidence, datasets=statuses
    )


def _file_url(dataset: str) -> str:
    kinds, _, rest = dataset.partition("/")
    repo, _, number = rest.rpartition("@")
    return f"/artifacts/{kinds}/{repo}/versions/{number}"
