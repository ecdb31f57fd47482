"""Training-data search use cases: search a dataset's (or a model's training data's) records
for a passage, trace a model's output to the spans it shares verbatim with its training
data, answer whether content was in it, and opt content out.

Containment: an index is an artifact like the data it indexes (same level, same readers),
so a search reads it as a download, recorded above CL-1 and refused where the asker may not
read content; a dataset the asker may not read is never named, searched or counted. The
deletion list (every record an opt-out not rejected names, and every record with the same
content digest) is applied to every answer at once, before any index is rebuilt without it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import service as artifacts
from commonlab.artifacts.service import Registry, Relation, VersionFacts
from commonlab.compute import service as compute
from commonlab.datasearch.events import DatasearchEvent
from commonlab.datasearch.models import IndexBuild, OptOut, OptOutMatch
from commonlab.datasearch.opened import (
    MAX_QUERY_TOKENS,
    IndexedRecord,
    OpenedIndex,
    is_index,
    open_index,
)
from commonlab.datasearch.schemas import (
    MAX_PASSAGE_CHARS,
    DatasetSearched,
    EvidenceOut,
    HitOut,
    MembershipOut,
    ModelTrainedOut,
    OptOutCreate,
    OptOutDecision,
    OptOutKind,
    OptOutMatchOut,
    OptOutOut,
    SearchOut,
    SemanticHitOut,
    SemanticOut,
    SpanOut,
    SpanRecordOut,
    TraceOut,
)
from commonlab.db import lock_for_writing, utcnow
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.policy import Action, authorize, decide
from commonlab.policy.principal import SYSTEM, Principal
from commonlab.policy.resources import Resource

if TYPE_CHECKING:
    from commonlab.datasearch.exact import Hit

__all__ = [
    "MAX_HITS_SHOWN",
    "decide_optout",
    "exclusions_for",
    "file_optout",
    "get_optout",
    "index_status",
    "list_optouts",
    "membership",
    "note_index_build",
    "optout_digests",
    "search",
    "semantic_search",
    "signed_filter",
    "trace",
]

MAX_HITS_SHOWN = 100
MAX_CONTEXT_TOKENS = 200
# Occurrences read to subtract those in opted-out records, and to match an opt-out.
MAX_LOCATE = 10_000
# Training datasets one search looks in at most.
MAX_DATASETS = 50


# Where to search ----------------------------------------------------------------------------


@dataclass
class _Target:
    """A dataset version to search and its newest readable index (None: none yet)."""

    dataset: VersionFacts
    index: VersionFacts | None
    building: int | None


def _targets(
    db: Session, actor: Principal, *, dataset: str | None, model: str | None
) -> list[_Target]:
    """The dataset versions a request names (one, or a model's training data), each with the
    newest index `actor` may read; in one transaction."""
    if (dataset is None) == (model is None):
        raise InvalidInput("name a dataset version (dataset=…) or a model version (model=…)")
    with db.begin():
        try:
            if model is not None:
                datasets = artifacts.training_data(db, actor, model)
            else:
                datasets = [artifacts.version_facts(db, actor, dataset or "")]
        except ValueError:
            raise InvalidInput(
                f"{model or dataset!r} is not a version reference (datasets/ns/name@3)"
            ) from None
        targets = []
        for facts in datasets[:MAX_DATASETS]:
            indexes = artifacts.derived_versions(db, actor, facts.ref, {Relation.INDEXES})
            targets.append(
                _Target(facts, indexes[0] if indexes else None, _building(db, facts.ref))
            )
    return targets


def _building(db: Session, dataset: str) -> int | None:
    """The index job for `dataset` still queued or running, if any."""
    jobs = db.scalars(
        select(IndexBuild.job_id)
        .where(IndexBuild.dataset == dataset)
        .order_by(IndexBuild.job_id.desc())
    )
    for job_id in jobs:
        if not compute.job_finished(db, job_id):
            return job_id
    return None


def index_status(
    db: Session, actor: Principal, *, dataset: str | None = None, model: str | None = None
) -> list[DatasetSearched]:
    """The dataset versions a search of `dataset` or `model` would look in (those `actor`
    may read), each with its newest index, or the job building one, or neither."""
    return [_status(target) for target in _targets(db, actor, dataset=dataset, model=model)]


def _status(target: _Target) -> DatasetSearched:
    if target.index is not None:
        return DatasetSearched(
            dataset=target.dataset.ref, index=target.index.ref, status="searched"
        )
    if target.building is not None:
        return DatasetSearched(
            dataset=target.dataset.ref, index=None, status="building", job=target.building
        )
    return DatasetSearched(dataset=target.dataset.ref, index=None, status="no index")


def _open(db: Session, actor: Principal, registry: Registry, index: VersionFacts) -> OpenedIndex:
    """An index version's files, read as `actor` (a download: recorded above CL-1)."""
    version, opened = artifacts.open_files(db, actor, registry, artifacts.parse_ref(index.ref))
    files = {path: local for path, (_, local) in opened.items()}
    if not is_index(files):
        raise InvalidInput(f"{index.ref} is not a search index")
    return open_index(version.statement_sha256, files)


def _nothing_searchable(targets: list[_Target], what: str) -> InvalidInput | NotFound:
    building = [t for t in targets if t.building is not None]
    if building:
        jobs = ", ".join(f"{t.dataset.ref} by job {t.building}" for t in building)
        return Conflict(f"the index of {what} is still being built ({jobs}): try when it ends")
    if not targets:
        return NotFound(f"{what} has no training data you may read")
    refs = " ".join(t.dataset.ref for t in targets)
    return NotFound(
        f"{what} has no search index yet: build one with `commonlab index build {refs}`"
    )


# The deletion list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DeletionList:
    """Records an opt-out not rejected names: by place, and by content digest."""

    places: frozenset[tuple[str, str, int]]
    digests: frozenset[str]

    def drops(self, dataset: str, entry: IndexedRecord) -> bool:
        return (dataset, entry.file, entry.index) in self.places or any(
            digest in self.digests for digest in entry.digests
        )


def _deletion_list(db: Session) -> _DeletionList:
    honoured = OptOut.state != "rejected"
    rows = db.execute(
        select(OptOutMatch.dataset, OptOutMatch.file, OptOutMatch.record, OptOutMatch.sha256)
        .join(OptOut)
        .where(honoured)
    ).all()
    digests = {row.sha256 for row in rows}
    digests.update(
        db.scalars(select(OptOut.value).where(honoured, OptOut.kind == OptOutKind.SHA256))
    )
    return _DeletionList(
        frozenset((row.dataset, row.file, row.record) for row in rows), frozenset(digests)
    )


def optout_digests(db: Session) -> list[str]:
    """The content digests every honoured opt-out names: what the published filter holds."""
    with db.begin():
        return sorted(_deletion_list(db).digests)


def exclusions_for(db: Session, dataset: str) -> dict[str, Any]:
    """What an index or exclude job of `dataset` must leave out, in the caller's transaction:
    the records opt-outs matched in that version, and every honoured content digest (so the
    same content is dropped wherever it appears). The shape of `Exclusions` (workloads)."""
    rows = db.execute(
        select(OptOutMatch.optout_id, OptOutMatch.file, OptOutMatch.record)
        .join(OptOut)
        .where(OptOut.state != "rejected", OptOutMatch.dataset == dataset)
        .order_by(OptOutMatch.id)
    ).all()
    deletion = _deletion_list(db)
    return {
        "optouts": sorted({row.optout_id for row in rows}),
        "records": [{"file": row.file, "index": row.record} for row in rows],
        "sha256": sorted(deletion.digests),
    }


def note_index_build(db: Session, job_id: int, dataset: str) -> None:
    """An index job was admitted for `dataset` (in the admission's transaction)."""
    db.add(IndexBuild(job_id=job_id, dataset=dataset))


# Searching --------------------------------------------------------------------------------------


def _variants(opened: OpenedIndex, text: str) -> list[list[int]]:
    """The token sequences `text` may appear as in a record: a byte-level tokenizer folds the
    space before a word into the word's token, so a passage from inside a record starts with
    ' word', and one at a record's start with 'word'; both are looked for."""
    found = []
    for variant in (text, " " + text) if not text[:1].isspace() else (text,):
        ids = opened.tokens(variant)
        if len(ids) > MAX_QUERY_TOKENS:
            raise InvalidInput(
                f"the query is {len(ids)} tokens long; search at most {MAX_QUERY_TOKENS}"
            )
        if ids and ids not in found:
            found.append(ids)
    if not found:
        raise InvalidInput("the query is empty: give a passage to search for")
    return found


def _record_url(dataset: str, file: str, index: int) -> str:
    kinds, _, rest = dataset.partition("/")
    repo, _, number = rest.rpartition("@")
    return f"/artifacts/{kinds}/{repo}/versions/{number}/records/{index}?file={quote(file)}"


@dataclass
class _Fallback:
    """What a dataset version declares, for records that say nothing of their own."""

    source: str | None
    license: str | None


def _fallback(db: Session, actor: Principal, dataset: str) -> _Fallback:
    view = artifacts.read_version(db, actor, artifacts.parse_ref(dataset))
    names = [str(s.get("url") or s.get("name") or "") for s in view.version.sources or []]
    names = [n for n in names if n]
    licenses = list(view.version.licenses or [])
    return _Fallback("; ".join(names) or None, " AND ".join(licenses) or None)


@dataclass
class _Found:
    count: int
    opted_out: int
    hits: list[tuple[Hit, int]]  # (hit, its index record number)


def _find(
    opened: OpenedIndex,
    dataset: str,
    ids_variants: list[list[int]],
    deletion: _DeletionList,
    *,
    limit: int,
) -> _Found:
    """Occurrences of any variant, less those in records the deletion list drops."""
    count = opted_out = 0
    hits: list[tuple[Hit, int]] = []
    for ids in ids_variants:
        total = opened.exact.count(ids)
        if total == 0:
            continue
        located = opened.exact.locate(ids, limit=min(total, MAX_LOCATE))
        dropped = 0
        for hit in located:
            entry = opened.record(hit.record)
            if deletion.drops(dataset, entry):
                dropped += 1
            elif len(hits) < limit:
                hits.append((hit, hit.record))
        count += total - dropped
        opted_out += dropped
    return _Found(count, opted_out, hits)


def _hit_out(
    opened: OpenedIndex, dataset: str, hit: Hit, fallback: _Fallback, context: int
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
        url=_record_url(dataset, entry.file, entry.index),
    )


def _check_text(text: str, *, what: str, at_most: int) -> str:
    if not text.strip():
        raise InvalidInput(f"{what} is empty: give the text to look for")
    if len(text) > at_most:
        raise InvalidInput(f"{what} is {len(text)} characters long; give at most {at_most}")
    return text.strip()


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
    query = _check_text(query, what="the query", at_most=MAX_PASSAGE_CHARS)
    if not 1 <= limit <= MAX_HITS_SHOWN:
        raise InvalidInput(f"limit must be 1 to {MAX_HITS_SHOWN}")
    if not 0 <= context <= MAX_CONTEXT_TOKENS:
        raise InvalidInput(f"context must be 0 to {MAX_CONTEXT_TOKENS} tokens")
    targets = _targets(db, actor, dataset=dataset, model=model)
    searchable = [t for t in targets if t.index is not None]
    if not searchable:
        raise _nothing_searchable(targets, model or dataset or "")
    with db.begin():
        deletion = _deletion_list(db)
    statuses, hits = [], []
    count = opted_out = 0
    for target in targets:
        status = _status(target)
        statuses.append(status)
        if target.index is None:
            continue
        opened = _open(db, actor, registry, target.index)
        found = _find(
            opened,
            target.dataset.ref,
            _variants(opened, query),
            deletion,
            limit=limit - len(hits),
        )
        status.count = found.count
        count += found.count
        opted_out += found.opted_out
        if found.hits:
            fallback = _fallback(db, actor, target.dataset.ref)
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
    query = _check_text(query, what="the query", at_most=MAX_PASSAGE_CHARS)
    if not 1 <= limit <= MAX_HITS_SHOWN:
        raise InvalidInput(f"limit must be 1 to {MAX_HITS_SHOWN}")
    targets = _targets(db, actor, dataset=dataset, model=model)
    if not any(t.index is not None for t in targets):
        raise _nothing_searchable(targets, model or dataset or "")
    with db.begin():
        deletion = _deletion_list(db)
    statuses, hits = [], []
    opted_out = 0
    for target in targets:
        status = _status(target)
        statuses.append(status)
        if target.index is None:
            continue
        opened = _open(db, actor, registry, target.index)
        if not opened.has_semantic:
            status.status = "no semantic index"
            continue
        fallback = _fallback(db, actor, target.dataset.ref)
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
                    url=_record_url(target.dataset.ref, entry.file, entry.index),
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
    from commonlab.datasearch.schemas import MAX_TRACE_CHARS
    from commonlab.datasearch.trace import trace as trace_spans

    text = _check_text(text, what="the text to trace", at_most=MAX_TRACE_CHARS)
    if not 1 <= min_tokens <= 64:
        raise InvalidInput("min_tokens must be 1 to 64")
    if not 1 <= max_spans <= 100:
        raise InvalidInput("max_spans must be 1 to 100")
    targets = _targets(db, actor, dataset=None, model=model)
    if not any(t.index is not None for t in targets):
        raise _nothing_searchable(targets, model)
    with db.begin():
        deletion = _deletion_list(db)
    candidates: list[SpanOut] = []
    statuses = []
    for target in targets:
        statuses.append(_status(target))
        if target.index is None:
            continue
        opened = _open(db, actor, registry, target.index)
        encoding = opened.encode(text)
        ids, offsets = list(encoding.ids), list(encoding.offsets)
        fallback = _fallback(db, actor, target.dataset.ref)
        for span in trace_spans(
            opened.exact, ids[:MAX_QUERY_TOKENS], min_tokens=min_tokens, max_spans=max_spans
        ):
            start, end = offsets[span.start][0], offsets[span.end - 1][1]
            while start < end and text[start].isspace():
                start += 1
            if _cuts_a_word(text, start, end):
                continue  # as OLMoTrace does: half a word is no evidence of a copied span
            found = _find(
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


def _span_record(opened: OpenedIndex, dataset: str, hit: Hit, fallback: _Fallback) -> SpanRecordOut:
    entry = opened.record(hit.record)
    return SpanRecordOut(
        dataset=dataset,
        file=entry.file,
        record=entry.index,
        source=entry.source or fallback.source,
        license=entry.license or fallback.license,
        url=_record_url(dataset, entry.file, entry.index),
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
    targets = _targets(db, actor, dataset=dataset, model=model)
    evidence: list[EvidenceOut] = []
    statuses = []
    for target in targets:
        status = _status(target)
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
        opened = _open(db, actor, registry, target.index)
        if sha256 is not None:
            matched = opened.records_with_digest(sha256)
            how = "record"
        else:
            text = _check_text(passage or "", what="the passage", at_most=MAX_PASSAGE_CHARS)
            found = _find(
                opened,
                ref,
                _variants(opened, text),
                _DeletionList(frozenset(), frozenset()),
                limit=MAX_HITS_SHOWN,
            )
            matched = [opened.record(hit.record) for hit, _ in found.hits]
            status.count = found.count
            how = "passage"
        for entry in _unique(matched):
            evidence.append(
                EvidenceOut(
                    dataset=ref,
                    file=entry.file,
                    record=entry.index,
                    how=how,
                    url=_record_url(ref, entry.file, entry.index),
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


def _unique(entries: Iterable[Any]) -> Iterator[Any]:
    seen = set()
    for entry in entries:
        key = (entry.file, entry.index)
        if key not in seen:
            seen.add(key)
            yield entry


# Opt-outs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    dataset: VersionFacts
    file: str
    record: int
    sha256: str


def _optout_resource(optout: OptOut | None) -> Resource:
    if optout is None:
        return Resource("optout", "new")
    owner = int(optout.requester) if optout.requester.isdigit() else None
    return Resource("optout", str(optout.id), owner=owner)


def _check_value(req: OptOutCreate) -> str:
    value = req.value
    if req.kind is OptOutKind.SHA256:
        value = value.lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise InvalidInput(
                "value: a sha256 opt-out names 64 hexadecimal digits (`commonlab optout hash "
                "FILE` prints a record's)"
            )
    if req.kind is OptOutKind.URL and not value.startswith(("http://", "https://")):
        raise InvalidInput("value: a url opt-out names a pattern like https://example.org/books/*")
    return value


def _every_index(db: Session) -> list[tuple[VersionFacts, VersionFacts]]:
    """The newest index of every indexed dataset version in the facility (the facility
    matches an opt-out everywhere, whoever files it)."""
    with db.begin():
        pairs = artifacts.links(db, SYSTEM, Relation.INDEXES)
    newest: dict[str, tuple[VersionFacts, VersionFacts]] = {}
    for index, dataset in pairs:
        newest.setdefault(dataset.ref, (index, dataset))
    return list(newest.values())


def _matches(db: Session, registry: Registry, kind: OptOutKind, value: str) -> list[_Match]:
    found: list[_Match] = []
    for index, dataset in _every_index(db):
        opened = _open(db, SYSTEM, registry, index)
        if kind is OptOutKind.PASSAGE:
            entries = []
            for ids in _variants(opened, value):
                located = (
                    opened.exact.locate(ids, limit=MAX_LOCATE) if opened.exact.count(ids) else []
                )
                entries.extend(opened.record(hit.record) for hit in located)
        elif kind is OptOutKind.SHA256:
            entries = opened.records_with_digest(value)
            with db.begin():
                files = artifacts.files_with_sha256(db, dataset.ref, value)
            for path in files:
                entries.extend(opened.records_of_file(path))
        else:
            fallback = _fallback(db, SYSTEM, dataset.ref)
            entries = [
                opened.record(n)
                for n in range(len(opened))
                if fnmatch.fnmatchcase(opened.record(n).source or fallback.source or "", value)
            ]
        found.extend(_Match(dataset, e.file, e.index, e.sha256) for e in _unique(entries))
    return found


def _models_trained_on(
    db: Session, actor: Principal, datasets: Iterable[str]
) -> list[tuple[VersionFacts, str]]:
    """The model versions `actor` may read trained on any of `datasets`, and the fine-tunes
    of those, onwards; with the dataset each came from. In the caller's transaction."""
    found: dict[str, tuple[VersionFacts, str]] = {}
    for dataset in datasets:
        for trained in artifacts.derived_versions(db, actor, dataset, {Relation.TRAINED_ON}):
            if not trained.ref.startswith("models/"):
                continue
            found.setdefault(trained.ref, (trained, dataset))
            for derived in artifacts.derived_versions(
                db, actor, trained.ref, {Relation.DERIVED_FROM}, transitive=True
            ):
                if derived.ref.startswith("models/"):
                    found.setdefault(derived.ref, (derived, dataset))
    return sorted(found.values(), key=lambda pair: pair[0].ref)


def file_optout(db: Session, actor: Principal, registry: Registry, req: OptOutCreate) -> OptOutOut:
    """File an opt-out: match it against every index in the facility, keep the records it
    matched (the deletion list honoured from now on), and record it, the requester and what
    it names only as commitments, with the public dataset versions it matched and the
    released models trained on them before. One matching nothing is recorded all the same."""
    authorize(actor, Action.OptOutFile, _optout_resource(None))
    value = _check_value(req)
    matches = _matches(db, registry, req.kind, value)
    with db.begin():
        lock_for_writing(db)
        optout = OptOut(
            kind=req.kind.value,
            value=value,
            value_sha256=hashlib.sha256(value.encode()).hexdigest(),
            requester=str(actor.person_id),
            state="filed",
        )
        db.add(optout)
        db.flush()
        for match in matches:
            db.add(
                OptOutMatch(
                    optout_id=optout.id,
                    dataset=match.dataset.ref,
                    file=match.file,
                    record=match.record,
                    sha256=match.sha256,
                )
            )
        datasets = sorted({m.dataset.ref: m.dataset for m in matches}.values(), key=lambda d: d.ref)
        released = [
            facts.ref
            for facts, _ in _models_trained_on(db, SYSTEM, [d.ref for d in datasets])
            if facts.public
        ]
        record.append(
            db,
            DatasearchEvent.OptOutFiled,
            actor=actor,
            subject=f"optout/{optout.id}",
            data={
                "kind": req.kind.value,
                "records": sum(1 for m in matches if m.dataset.public),
                "datasets": [d.ref for d in datasets if d.public],
                "models_trained_before": released,
            },
            private={
                "requester": actor.pseudonym,
                "value": value,
                "contained_records": sum(1 for m in matches if not m.dataset.public),
            },
        )
        db.flush()
        return _optout_out(db, actor, optout)


def decide_optout(db: Session, actor: Principal, optout_id: int, req: OptOutDecision) -> OptOutOut:
    """An operator upholds or rejects an opt-out (one filed by someone for content they do
    not own, say); recorded in clear with the reason. A rejected opt-out stops being
    honoured; its matches stay, so upholding it later needs no new search."""
    with db.begin():
        lock_for_writing(db)
        optout = _find_optout(db, actor, optout_id)
        authorize(actor, Action.OptOutDecide, _optout_resource(optout))
        if optout.state != "filed":
            raise Conflict(f"opt-out {optout_id} was already {optout.state}")
        optout.state = req.decision
        optout.reason = req.reason
        optout.decided_at = utcnow()
        record.append(
            db,
            DatasearchEvent.OptOutDecided,
            actor=actor,
            subject=f"optout/{optout.id}",
            data={"decision": req.decision, "reason": req.reason},
        )
        db.flush()
        return _optout_out(db, actor, optout)


def _find_optout(db: Session, actor: Principal, optout_id: int) -> OptOut:
    optout = db.get(OptOut, optout_id)
    if optout is None:
        raise NotFound(f"there is no opt-out {optout_id}")
    return optout


def get_optout(db: Session, actor: Principal, optout_id: int) -> OptOutOut:
    """An opt-out as `actor` may see it (opt-outs are public; what one names is not)."""
    with db.begin():
        return _optout_out(db, actor, _find_optout(db, actor, optout_id))


def list_optouts(
    db: Session, actor: Principal, *, after: int | None = None, limit: int = 50
) -> tuple[list[OptOutOut], int | None]:
    """A page of opt-outs, newest first, and the id to continue before (None at the end)."""
    with db.begin():
        query = select(OptOut).order_by(OptOut.id.desc())
        if after is not None:
            query = query.where(OptOut.id < after)
        rows = db.scalars(query.limit(limit + 1)).all()
        page = [_optout_out(db, actor, row) for row in rows[:limit]]
    return page, rows[limit - 1].id if len(rows) > limit else None


def _optout_out(db: Session, actor: Principal, optout: OptOut) -> OptOutOut:
    may_see_value = decide(actor, Action.OptOutRead, _optout_resource(optout)).allowed
    readable: dict[str, bool] = {}
    matches = []
    for match in optout.matches:
        if match.dataset not in readable:
            readable[match.dataset] = _may_read(db, actor, match.dataset)
        if readable[match.dataset]:
            matches.append(
                OptOutMatchOut(
                    dataset=match.dataset,
                    file=match.file,
                    record=match.record,
                    url=_record_url(match.dataset, match.file, match.record),
                )
            )
    models = [
        ModelTrainedOut(
            model=facts.ref,
            dataset=dataset,
            after_optout=created > optout.created_at,
            created_at=created,
        )
        for facts, dataset in _models_trained_on(db, actor, [d for d, ok in readable.items() if ok])
        for created in [facts.created_at]
    ]
    return OptOutOut(
        id=optout.id,
        kind=optout.kind,
        value=optout.value if may_see_value else None,
        state=optout.state,
        reason=optout.reason,
        records=len(matches),
        matches=matches[:MAX_HITS_SHOWN],
        models=models,
        created_at=optout.created_at,
        decided_at=optout.decided_at,
    )


def _may_read(db: Session, actor: Principal, ref: str) -> bool:
    return artifacts.may_read(db, actor, ref)


def signed_filter(db: Session, registry: Registry) -> dict[str, Any]:
    """The signed Bloom filter of every honoured opt-out's content digests (see
    `optout_filter`), signed by the facility's key, which also signs its checkpoints: anyone
    checks a file or a record offline (`commonlab optout check`)."""
    from commonlab.datasearch.optout_filter import OptoutFilter, sign_filter

    with db.begin():
        digests = sorted(_deletion_list(db).digests)
        optouts = db.scalar(select(func.count()).where(OptOut.state != "rejected")) or 0
    signer = registry.signer
    return sign_filter(
        OptoutFilter.build(digests),
        signer,
        signer.verifier_key(),
        issued_at=utcnow(),
        optouts=int(optouts),
    )
