"""Opt-outs: a data owner asks that content be left out of training data. Filing matches it
against every index in the facility and records it (the requester and what it names only as
commitments); from then on every answer drops what it matched (`targets.deletion_list`),
index and exclude jobs are admitted with it (`exclusions_for`), each opt-out lists the
models trained on the data, an operator may uphold or reject it, and the signed filter of
opted-out digests lets anyone check offline."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import service as artifacts
from commonlab.artifacts.service import Registry, Relation, VersionFacts
from commonlab.datasearch.events import DatasearchEvent
from commonlab.datasearch.models import OptOut, OptOutMatch
from commonlab.datasearch.schemas import (
    ModelTrainedOut,
    OptOutCreate,
    OptOutDecision,
    OptOutKind,
    OptOutMatchOut,
    OptOutOut,
)
from commonlab.datasearch.targets import (
    MAX_HITS_SHOWN,
    MAX_LOCATE,
    fallback_of,
    honoured_digests,
    open_index_version,
    record_url,
    unique,
    variants,
)
from commonlab.db import lock_for_writing, utcnow
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.policy import Action, authorize, decide
from commonlab.policy.principal import PUBLIC, SYSTEM, Principal
from commonlab.policy.resources import Resource


def exclusions_for(db: Session, actor: Principal, dataset: str) -> dict[str, Any]:
    """What an index or exclude job of `dataset`, admitted for `actor`, must leave out, in
    the caller's transaction: the records opt-outs matched in that version, and the content
    digests `actor` may know of (so the same content is dropped wherever it appears). The
    shape of `Exclusions` (workloads); the job's configuration is its submitter's to read."""
    rows = db.execute(
        select(OptOutMatch.optout_id, OptOutMatch.file, OptOutMatch.record)
        .join(OptOut)
        .where(OptOut.state != "rejected", OptOutMatch.dataset == dataset)
        .order_by(OptOutMatch.id)
    ).all()
    return {
        "optouts": sorted({row.optout_id for row in rows}),
        "records": [{"file": row.file, "index": row.record} for row in rows],
        "sha256": honoured_digests(db, actor),
    }


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
        opened = open_index_version(db, SYSTEM, registry, index)
        if kind is OptOutKind.PASSAGE:
            entries = []
            for ids in variants(opened, value):
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
            fallback = fallback_of(db, SYSTEM, dataset.ref)
            entries = [
                opened.record(n)
                for n in range(len(opened))
                if fnmatch.fnmatchcase(opened.record(n).source or fallback.source or "", value)
            ]
        found.extend(_Match(dataset, e.file, e.index, e.sha256) for e in unique(entries))
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
                    url=record_url(match.dataset, match.file, match.record),
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
    """The signed Bloom filter of the honoured opt-outs' content digests the public may know
    of (`honoured_digests`; see `optout_filter`), signed by the facility's key, which also
    signs its checkpoints: anyone checks a file or a record offline (`optout check`)."""
    # The filter needs numpy: loaded where used, so a core install serves the other routes.
    from commonlab.datasearch.optout_filter import OptoutFilter, sign_filter

    with db.begin():
        digests = honoured_digests(db, PUBLIC)
        optouts = db.scalar(select(func.count()).where(OptOut.state != "rejected")) or 0
    signer = registry.signer
    return sign_filter(
        OptoutFilter.build(digests),
        signer,
        signer.verifier_key(),
        issued_at=utcnow(),
        optouts=int(optouts),
    )
