"""Where a training-data search looks, and what it leaves out: the dataset versions a
request names (one, or a model's training data through its lineage) with the newest index
the asker may read, an index version opened as a download, the deletion list every answer
honours, and the helpers every search shares (a query's token sequences, a record's page, a
version's declared source and licence, occurrences less the opted-out ones).

Containment: an index is an artifact like the data it indexes (same level, same readers),
so it is read as a download, recorded above CL-1 and refused where the asker may not read
content; a dataset the asker may not read is never named, searched or counted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.artifacts import service as artifacts
from commonlab.artifacts.service import Registry, Relation, VersionFacts
from commonlab.compute import service as compute
from commonlab.datasearch.models import IndexBuild, OptOut, OptOutMatch
from commonlab.datasearch.opened import (
    MAX_QUERY_TOKENS,
    IndexedRecord,
    OpenedIndex,
    is_index,
    open_index,
)
from commonlab.datasearch.schemas import (
    DatasetSearched,
    OptOutKind,
)
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.policy.principal import Principal

if TYPE_CHECKING:
    from commonlab.datasearch.exact import Hit


MAX_HITS_SHOWN = 100
MAX_CONTEXT_TOKENS = 200
# Occurrences read to subtract those in opted-out records, and to match an opt-out.
MAX_LOCATE = 10_000
# Training datasets one search looks in at most.
MAX_DATASETS = 50


# Where to search ----------------------------------------------------------------------------


@dataclass
class Target:
    """A dataset version to search and its newest readable index (None: none yet)."""

    dataset: VersionFacts
    index: VersionFacts | None
    building: int | None


def targets_of(
    db: Session, actor: Principal, *, dataset: str | None, model: str | None
) -> list[Target]:
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
                Target(facts, indexes[0] if indexes else None, building_job(db, facts.ref))
            )
    return targets


def building_job(db: Session, dataset: str) -> int | None:
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


def status_of(target: Target) -> DatasetSearched:
    if target.index is not None:
        return DatasetSearched(
            dataset=target.dataset.ref, index=target.index.ref, status="searched"
        )
    if target.building is not None:
        return DatasetSearched(
            dataset=target.dataset.ref, index=None, status="building", job=target.building
        )
    return DatasetSearched(dataset=target.dataset.ref, index=None, status="no index")


def open_index_version(
    db: Session, actor: Principal, registry: Registry, index: VersionFacts
) -> OpenedIndex:
    """An index version's files, read as `actor` (a download: recorded above CL-1)."""
    version, opened = artifacts.open_files(db, actor, registry, artifacts.parse_ref(index.ref))
    files = {path: local for path, (_, local) in opened.items()}
    if not is_index(files):
        raise InvalidInput(f"{index.ref} is not a search index")
    return open_index(version.statement_sha256, files)


def nothing_searchable(targets: list[Target], what: str) -> InvalidInput | NotFound:
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
class DeletionList:
    """Records an opt-out not rejected names: by place, and by content digest."""

    places: frozenset[tuple[str, str, int]]
    digests: frozenset[str]

    def drops(self, dataset: str, entry: IndexedRecord) -> bool:
        return (dataset, entry.file, entry.index) in self.places or any(
            digest in self.digests for digest in entry.digests
        )


def honoured_digests(db: Session, actor: Principal) -> list[str]:
    """The content digests honoured opt-outs name that `actor` may know of, in the caller's
    transaction: those of matched records in data `actor` may read, and those opt-outs by
    digest name. A matched record in data they may not read is left out: its digest, or how
    many there are, would tell whoever files a passage whether contained data holds it."""
    honoured = OptOut.state != "rejected"
    rows = db.execute(
        select(OptOutMatch.dataset, OptOutMatch.sha256).join(OptOut).where(honoured)
    ).all()
    readable: dict[str, bool] = {}
    digests = set()
    for row in rows:
        if row.dataset not in readable:
            readable[row.dataset] = artifacts.may_read(db, actor, row.dataset)
        if readable[row.dataset]:
            digests.add(row.sha256)
    digests.update(
        db.scalars(select(OptOut.value).where(honoured, OptOut.kind == OptOutKind.SHA256))
    )
    return sorted(digests)


def deletion_list(db: Session, actor: Principal) -> DeletionList:
    """What answers to `actor` leave out: every record an honoured opt-out matched, and
    every record whose content digest `actor` may know to be opted out (`honoured_digests`:
    a digest known only from contained data would let anyone learn, by searching data of
    their own, what opt-outs matched there)."""
    rows = db.execute(
        select(OptOutMatch.dataset, OptOutMatch.file, OptOutMatch.record)
        .join(OptOut)
        .where(OptOut.state != "rejected")
    ).all()
    return DeletionList(
        frozenset((row.dataset, row.file, row.record) for row in rows),
        frozenset(honoured_digests(db, actor)),
    )


def note_index_build(db: Session, job_id: int, dataset: str) -> None:
    """An index job was admitted for `dataset` (in the admission's transaction)."""
    db.add(IndexBuild(job_id=job_id, dataset=dataset))


# Shared by every search -------------------------------------------------------------------------


def variants(opened: OpenedIndex, text: str) -> list[list[int]]:
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


def record_url(dataset: str, file: str, index: int) -> str:
    kinds, _, rest = dataset.partition("/")
    repo, _, number = rest.rpartition("@")
    return f"/artifacts/{kinds}/{repo}/versions/{number}/records/{index}?file={quote(file)}"


@dataclass
class Fallback:
    """What a dataset version declares, for records that say nothing of their own."""

    source: str | None
    license: str | None


def fallback_of(db: Session, actor: Principal, dataset: str) -> Fallback:
    view = artifacts.read_version(db, actor, artifacts.parse_ref(dataset))
    names = [str(s.get("url") or s.get("name") or "") for s in view.version.sources or []]
    names = [n for n in names if n]
    licenses = list(view.version.licenses or [])
    return Fallback("; ".join(names) or None, " AND ".join(licenses) or None)


@dataclass
class Found:
    count: int
    opted_out: int
    hits: list[tuple[Hit, int]]  # (hit, its index record number)


def find(
    opened: OpenedIndex,
    dataset: str,
    ids_variants: list[list[int]],
    deletion: DeletionList,
    *,
    limit: int,
) -> Found:
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
    return Found(count, opted_out, hits)


def check_text(text: str, *, what: str, at_most: int) -> str:
    if not text.strip():
        raise InvalidInput(f"{what} is empty: give the text to look for")
    if len(text) > at_most:
        raise InvalidInput(f"{what} is {len(text)} characters long; give at most {at_most}")
    return text.strip()


def unique(entries: Iterable[Any]) -> Iterator[Any]:
    seen = set()
    for entry in entries:
        key = (entry.file, entry.index)
        if key not in seen:
            seen.add(key)
            yield entry
