"""Artifacts use cases: repositories, resumable uploads, signed versions, tags, downloads,
lineage and garbage collection. Each one authorizes first, applies its rules, and writes its
rows and its record entry in one transaction; object bytes live in `store.ObjectStore`."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import croissant as croissant_doc
from commonlab.artifacts import metadata, records, signing
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import (
    JobRead,
    LineageEdge,
    Relation,
    Repo,
    RepoKind,
    Tag,
    Upload,
    UploadState,
    Version,
    VersionFile,
    Visibility,
)
from commonlab.artifacts.rules import Audience, reaches_beyond
from commonlab.artifacts.schemas import RepoCreate, TagSet, UploadCreate, VersionCreate
from commonlab.artifacts.store import ObjectStore, UploadOffsetMismatch
from commonlab.compute import service as compute
from commonlab.db import utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound
from commonlab.policy import Action, Resource, authorize, decide
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal, Role
from commonlab.record.note import Signer

__all__ = [
    "FileNotInVersion",
    "Registry",
    "RevisionNotFound",
    "collect_garbage",
    "commit_version",
    "create_repo",
    "get_repo",
    "get_version",
    "lineage",
    "list_repos",
    "open_file",
    "open_records",
    "parse_ref",
    "project_outputs",
    "prov_document",
    "put_chunk",
    "read_version",
    "set_tag",
    "start_upload",
    "upload_status",
    "visible_refs",
]

UPLOAD_LIFETIME = timedelta(days=1)
MAX_LINEAGE_NODES = 10_000


class RevisionNotFound(NotFound):
    """The repository exists, but no version answers to that revision."""


class FileNotInVersion(NotFound):
    """The version exists, but holds no file at that path."""


@dataclass(frozen=True)
class Registry:
    """What the use cases need beyond the database: the object store and the facility key."""

    store: ObjectStore
    signer: Signer
    base_url: str
    chunk_bytes: int


@dataclass(frozen=True)
class UploadStatus:
    id: str | None
    state: str
    size: int
    received: int
    blake3: str | None
    local_path: str | None = None


# Repositories --------------------------------------------------------------------------------


def _resource(repo: Repo) -> Resource:
    return Resource(
        "artifact",
        f"{repo.kind}/{repo.namespace}/{repo.name}",
        level=Level(repo.level),
        compartments=frozenset(repo.compartments),
        project=repo.project,
        owner=repo.owner_id,
    )


def _ctx(repo: Repo) -> dict[str, object]:
    return {"visibility": repo.visibility}


def _public(repo: Repo) -> bool:
    return repo.visibility == Visibility.PUBLIC and repo.level == Level.CL1


def _subject(repo: Repo, number: int | None = None) -> str:
    # Non-public repositories appear on the record by id; their names enter as commitments.
    base = f"{repo.kind}s/{repo.repo_id}" if _public(repo) else f"artifact/{repo.id}"
    return base if number is None else f"{base}@{number}"


def create_repo(db: Session, actor: Principal, req: RepoCreate) -> Repo:
    namespace = req.project or actor.pseudonym
    with db.begin():
        repo = Repo(
            kind=req.kind,
            namespace=namespace,
            name=req.name,
            project=req.project,
            owner_id=None if req.project else actor.person_id,
            visibility=req.visibility,
            level=req.level,
            compartments=sorted(set(req.compartments)),
            description=req.description,
            created_by=actor.pseudonym,
        )
        authorize(actor, Action.ArtifactsRepoCreate, _resource(repo), _ctx(repo))
        authorize(actor, Action.ResourceWrite, _resource(repo), {"data_level": req.level})
        if req.visibility == Visibility.PROJECT and not req.project:
            raise InvalidInput("visibility 'project' needs a project: give project, or 'private'")
        _check_may_know_every_name(db, actor, req.kind, namespace)
        if db.scalar(
            select(Repo.id).where(
                Repo.kind == req.kind,
                func.lower(Repo.namespace) == namespace.lower(),
                func.lower(Repo.name) == req.name.lower(),
            )
        ):
            raise Conflict(f"the {req.kind} repository {namespace}/{req.name} already exists")
        db.add(repo)
        db.flush()
        public = {"level": Level(req.level).label, "visibility": req.visibility}
        names = {"repository": repo.repo_id, "kind": req.kind}
        record.append(
            db,
            ArtifactsEvent.RepoCreated,
            actor=actor,
            as_role=Role.OPERATOR if req.project else None,
            subject=_subject(repo),
            data={**public, **(names if _public(repo) else {})},
            private=None if _public(repo) else names,
        )
    return repo


def _check_may_know_every_name(
    db: Session, actor: Principal, kind: RepoKind | str, namespace: str
) -> None:
    """A name taken in a namespace is taken for everyone who creates there, so a refused name
    would tell one who may not read a repository that it exists. One creates only in a
    namespace whose repositories of that kind one may all read (`_readable`): asked before
    any name is looked at, so the answer is the same whatever name is tried, and a name
    clash (409) is only ever with a repository the creator may read."""
    if actor.is_system:
        return
    held = db.scalars(
        select(Repo).where(Repo.kind == kind, func.lower(Repo.namespace) == namespace.lower())
    )
    if all(_readable(actor, repo) for repo in held):
        return
    raise AccessDenied(
        f"you may not create {kind} repositories in {namespace}: it holds {kind}s you may not "
        "read, and the name you chose could be one of theirs; ask someone who may read them "
        "all to create it (a job's token reads only up to its job's level)"
    )


def _no_such_repo(kind: RepoKind | str, namespace: str, name: str) -> NotFound:
    return NotFound(f"no {kind} repository {namespace}/{name}")


def _find_repo(db: Session, kind: RepoKind | str, namespace: str, name: str) -> Repo:
    repo = db.scalar(
        select(Repo).where(Repo.kind == kind, Repo.namespace == namespace, Repo.name == name)
    )
    if repo is None:
        raise _no_such_repo(kind, namespace, name)
    return repo


def _readable(actor: Principal, repo: Repo) -> bool:
    """The one decision whether `actor` may know `repo` exists: open it, find it in a list, a
    search or a count, read its metadata. The visibility permit and the containment lattice
    (clearance, compartments, project, a job's level) must both allow it."""
    return (
        decide(actor, Action.ArtifactsRead, _resource(repo), _ctx(repo)).allowed
        and decide(actor, Action.ResourceRead, _resource(repo)).allowed
    )


def _content_denial(actor: Principal, repo: Repo) -> str | None:
    """Why `actor` may not read what is inside the files (a download's decision), or None:
    what was read out of them at publish (a card, records' sources, a Croissant schema)
    goes with them."""
    decision = decide(actor, Action.ArtifactsDownload, _resource(repo), _ctx(repo))
    return None if decision.allowed else decision.reason


def _authorize_read(actor: Principal, repo: Repo) -> None:
    # Whether a repository exists is not for those who may not read it: they get the answer
    # a missing one gets, word for word (a 403 would confirm it exists).
    if not _readable(actor, repo):
        raise _no_such_repo(repo.kind, repo.namespace, repo.name)


def _authorize_write(actor: Principal, repo: Repo, *, data_level: int | None = None) -> None:
    _authorize_read(actor, repo)
    authorize(actor, Action.ArtifactsWrite, _resource(repo), _ctx(repo))
    level = max(repo.level, data_level or 0)
    authorize(actor, Action.ResourceWrite, _resource(repo), {"data_level": level})


def get_repo(
    db: Session, actor: Principal, kind: RepoKind | str, namespace: str, name: str
) -> Repo:
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_read(actor, repo)
        _note_job_read(db, actor, repo)
        _ = repo.versions, [tag.version for tag in repo.tags]
    return repo


def list_repos(
    db: Session,
    actor: Principal,
    *,
    kind: RepoKind | None = None,
    q: str | None = None,
    after: int | None = None,
    limit: int = 50,
    newest_first: bool = False,
) -> tuple[list[Repo], int | None]:
    """One page of the repositories `actor` may read, and the id to continue after (None at
    the end). Each is kept by the decision that opening it takes (`_readable`), so a list, a
    search or a count never names what a read would refuse; the query only narrows the
    candidates cheaply."""
    query = _candidates(actor, kind=kind, q=q)
    order = Repo.id.desc() if newest_first else Repo.id
    found: list[Repo] = []
    with db.begin():
        while len(found) <= limit:
            batch = query
            if after is not None:
                batch = batch.where(Repo.id < after if newest_first else Repo.id > after)
            rows = db.scalars(batch.order_by(order).limit(max(limit + 1, 100))).all()
            found.extend(repo for repo in rows if _readable(actor, repo))
            if len(rows) < max(limit + 1, 100):
                break
            after = rows[-1].id
        page = found[:limit]
        for repo in page:
            _ = repo.versions, [tag.version for tag in repo.tags]
    return page, page[-1].id if len(found) > limit else None


def _candidates(actor: Principal, *, kind: RepoKind | None, q: str | None) -> Any:
    """A superset of what `actor` may read (never a subset: `_readable` decides)."""
    query = select(Repo)
    oversight = actor.roles & {Role.OPERATOR, Role.AUDITOR, Role.SAFETY_OFFICER}
    if not oversight:
        clearance = actor.clearance
        reach = int(clearance.level) if clearance and clearance.expires_at > utcnow() else 1
        visible = [Repo.visibility == Visibility.PUBLIC]
        if actor.person_id is not None:
            visible.append(Repo.owner_id == actor.person_id)
        if actor.projects:
            visible.append(
                (Repo.project.in_(sorted(actor.projects))) & (Repo.visibility != Visibility.PRIVATE)
            )
        query = query.where(or_(*visible), Repo.level <= reach)
    if kind is not None:
        query = query.where(Repo.kind == kind)
    if q:
        needle = q.lower()
        query = query.where(
            or_(
                func.lower(Repo.name).contains(needle, autoescape=True),
                func.lower(Repo.namespace).contains(needle, autoescape=True),
                func.lower(Repo.description).contains(needle, autoescape=True),
            )
        )
    return query


def list_versions(
    db: Session,
    actor: Principal,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    *,
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[Version], int | None]:
    """One page of a repository's versions (by number), read as the repository is."""
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_read(actor, repo)
        _note_job_read(db, actor, repo)
        query = select(Version).where(Version.repo_id == repo.id)
        if after is not None:
            query = query.where(Version.number > after)
        rows = db.scalars(query.order_by(Version.number).limit(limit + 1)).all()
        for version in rows:
            _ = version.files
    page = list(rows[:limit])
    return page, page[-1].number if len(rows) > limit else None


# What jobs read -----------------------------------------------------------------------------


def _note_job_read(
    db: Session, actor: Principal, repo: Repo, version: Version | None = None
) -> None:
    """Every read a job makes is known to the facility, the first time it is made: what the
    job publishes is held to the level of all it read, and names the versions in its lineage.
    In the read's own transaction, so a read is never served unnoted."""
    job_id = actor.job_id
    if job_id is None:
        return
    version_id = version.id if version is not None else None
    same = JobRead.version_id.is_(None) if version_id is None else JobRead.version_id == version_id
    known = select(JobRead.id).where(JobRead.job_id == job_id, JobRead.repo_id == repo.id, same)
    if db.scalar(known) is not None:
        return
    try:
        with db.begin_nested():
            db.add(JobRead(job_id=job_id, repo_id=repo.id, version_id=version_id))
    except IntegrityError:
        # Noted by a concurrent read of the same job; anything else fails the read.
        if db.scalar(known) is None:
            raise


# Uploads -------------------------------------------------------------------------------------


def start_upload(
    db: Session,
    actor: Principal,
    registry: Registry,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    req: UploadCreate,
) -> UploadStatus:
    """Open a resumable upload, or none when this repository already holds the bytes."""
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_write(actor, repo)
        if req.blake3 is None and req.sha256 is None:
            _refuse_blind_upload_of_held_size(db, repo, req.size)
            known = None
        else:
            known = _held_copy(db, actor, repo, req)
        if known is not None and registry.store.holds(known.blake3, known.size):
            if req.sha256 not in (None, known.sha256) or known.size != req.size:
                raise InvalidInput(
                    "these bytes are held here with another digest or size: check the file"
                )
            return UploadStatus(None, UploadState.COMPLETE, req.size, req.size, known.blake3)
        upload = Upload(
            id=secrets.token_urlsafe(18),
            repo_id=repo.id,
            person_id=actor.person_id,
            size=req.size,
            # While open: the declared digests (either may be missing); once complete: both,
            # as computed from the bytes received.
            sha256=req.sha256 or "",
            blake3=req.blake3,
            state=UploadState.OPEN,
            expires_at=utcnow() + UPLOAD_LIFETIME,
        )
        db.add(upload)
        db.flush()
        registry.store.begin_upload(upload.id)
    if req.size == 0:
        return put_chunk(db, actor, registry, upload.id, 0, [])
    return _open_status(registry, upload.id, req.size, 0)


def _held_copy(db: Session, actor: Principal, repo: Repo, req: UploadCreate) -> Any:
    """The digests and size of a file this repository holds with the declared digest: by
    BLAKE3 when declared (what the CLI sends: it hashes fastest), else SHA-256 + size. Only
    this repository's bytes count: a digest alone proves no possession of the bytes."""
    same = (
        VersionFile.blake3 == req.blake3
        if req.blake3
        else (VersionFile.sha256 == req.sha256) & (VersionFile.size == req.size)
    )
    known = db.execute(
        select(VersionFile.blake3, VersionFile.sha256, VersionFile.size)
        .join(Version)
        .where(Version.repo_id == repo.id, same)
        .limit(1)
    ).first()
    if known is None and req.blake3:
        known = db.execute(
            select(Upload.blake3, Upload.sha256, Upload.size)
            .where(
                Upload.repo_id == repo.id,
                Upload.person_id == actor.person_id,
                Upload.state == UploadState.COMPLETE,
                Upload.blake3 == req.blake3,
            )
            .limit(1)
        ).first()
    return known


def _refuse_blind_upload_of_held_size(db: Session, repo: Repo, size: int) -> None:
    """An upload without a digest is for bytes new to this repository: when one of its
    versions holds a file of the same size, those bytes may be held already, and only a
    digest can say. (Only published files count: the files of one push are often shards of
    one size, and a digest asked of each would hash every one.)"""
    same_size = (
        select(VersionFile.id)
        .join(Version)
        .where(Version.repo_id == repo.id, VersionFile.size == size)
        .limit(1)
    )
    if size and db.scalar(same_size) is not None:
        raise Conflict(
            f"{repo.repo_id} holds a file of {size} bytes: declare this file's blake3 (or "
            "sha256) so that bytes it already holds are not sent again",
            digest_needed=True,
        )


def _open_status(registry: Registry, upload_id: str, size: int, received: int) -> UploadStatus:
    local = str(registry.store.part_path(upload_id))
    return UploadStatus(upload_id, UploadState.OPEN, size, received, None, local)


def _own_upload(db: Session, actor: Principal, upload_id: str) -> Upload:
    upload = db.get(Upload, upload_id) if len(upload_id) <= 40 else None
    if upload is None or upload.person_id != actor.person_id:
        raise NotFound(f"no upload {upload_id[:40]!r} of yours: start one with POST .../uploads")
    return upload


def upload_status(
    db: Session, actor: Principal, registry: Registry, upload_id: str
) -> UploadStatus:
    with db.begin():
        upload = _own_upload(db, actor, upload_id)
        if upload.state != UploadState.COMPLETE:
            received = registry.store.received(upload.id)
            return _open_status(registry, upload.id, upload.size, received)
        return UploadStatus(upload.id, upload.state, upload.size, upload.size, upload.blake3)


def put_chunk(
    db: Session,
    actor: Principal,
    registry: Registry,
    upload_id: str,
    offset: int,
    chunks: Iterable[bytes],
) -> UploadStatus:
    """Append bytes at `offset`; the last chunk checks the SHA-256 and makes the object."""
    with db.begin():
        upload = _own_upload(db, actor, upload_id)
        repo = db.get_one(Repo, upload.repo_id)
        _authorize_write(actor, repo)
        if upload.state != UploadState.OPEN:
            raise Conflict(f"upload {upload.id} is already complete: commit a version with it")
        if upload.expires_at <= utcnow():
            raise Conflict(f"upload {upload.id} expired: start a new one")
        size, expected_sha, expected_b3 = upload.size, upload.sha256 or None, upload.blake3
    store = registry.store
    try:
        received = store.append(upload_id, offset, chunks, limit=size)
    except UploadOffsetMismatch as exc:
        raise Conflict(
            f"this upload holds {exc.received} bytes: send the chunk at offset {exc.received}",
            received=exc.received,
        ) from None
    except ValueError:
        raise InvalidInput(
            f"the chunk runs past the declared size of {size} bytes: nothing of it was kept"
        ) from None
    except FileNotFoundError:
        raise Conflict(f"upload {upload_id} has no bytes on this facility: start again") from None
    if received < size:
        return _open_status(registry, upload_id, size, received)
    stored = store.finish_upload(
        upload_id, expected_sha256=expected_sha, expected_blake3=expected_b3
    )
    with db.begin():
        upload = db.get_one(Upload, upload_id)
        if stored is None:
            db.delete(upload)
        else:
            upload.state = UploadState.COMPLETE
            upload.sha256 = stored.sha256
            upload.blake3 = stored.blake3
    if stored is None:
        declared = " and ".join(
            f"{name} {value}"
            for name, value in (("SHA-256", expected_sha), ("BLAKE3", expected_b3))
            if value
        )
        raise InvalidInput(
            f"the {size} bytes received do not match the declared {declared}: the upload was "
            "discarded; check the file and upload it again"
        )
    return UploadStatus(upload_id, UploadState.COMPLETE, size, size, stored.blake3)


# Versions -----------------------------------------------------------------------------------


def _resolve(db: Session, repo: Repo, rev: str | None) -> Version:
    query = select(Version).where(Version.repo_id == repo.id)
    rev = (rev or "main").strip()
    if rev in ("main", "latest", "HEAD"):
        version = db.scalar(query.order_by(Version.number.desc()).limit(1))
    elif rev.isdigit() and len(rev) < 10:
        version = db.scalar(query.where(Version.number == int(rev)))
    else:
        tag = db.scalar(select(Tag).where(Tag.repo_id == repo.id, Tag.name == rev))
        if tag is not None:
            version = tag.version
        elif 7 <= len(rev) <= 40 and all(c in "0123456789abcdef" for c in rev):
            found = db.scalars(query.where(Version.commit.startswith(rev)).limit(2)).all()
            version = found[0] if len(found) == 1 else None
        else:
            version = None
    if version is None:
        raise RevisionNotFound(
            f"{repo.repo_id} has no revision {rev!r}: use a version number, a tag, a commit "
            "or 'main'"
        )
    return version


def parse_ref(ref: str) -> tuple[RepoKind, str, str, int]:
    """`datasets/ns/name@3` → (dataset, ns, name, 3)."""
    kinds, _, rest = ref.partition("/")
    repo_id, _, number = rest.rpartition("@")
    namespace, _, name = repo_id.partition("/")
    return RepoKind(kinds.removesuffix("s")), namespace, name, int(number)


def commit_version(
    db: Session,
    actor: Principal,
    registry: Registry,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    req: VersionCreate,
) -> Version:
    """Publish an immutable, signed version from uploaded (or already held) files."""
    paths = [metadata.check_path(f.path) for f in req.files]
    if len(set(paths)) != len(paths):
        raise InvalidInput("a path appears twice in files: each path names one file")
    folders = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    if clash := sorted(folders & set(paths)):
        raise InvalidInput(f"{clash[0]}: is both a file and a folder in files")
    store = registry.store
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_write(actor, repo)
        sources = _lineage_sources(db, actor, req)
        job, read = _check_facility_job(db, actor, req.job, sources)
        _check_no_write_down(repo, job, read)
        if sources:
            _authorize_write(actor, repo, data_level=max(v.repo.level for v, _ in sources))
        files, uploaded = _gather_files(db, actor, repo, store, req)
        number = (db.scalar(select(func.max(Version.number)).where(Version.repo_id == repo.id))
                  or 0) + 1  # fmt: skip
        _check_weight_stamps(files, repository=f"{repo.kind}s/{repo.repo_id}", version=number,
                             job=job)  # fmt: skip
        # Uploads are placed without fsync; a version is published only once its bytes are
        # on disk (before any row is written, so no write lock is held meanwhile). Files of
        # earlier versions were made durable when those were published.
        store.make_durable(uploaded)
        if repo.kind == RepoKind.DATASET:
            _summarize_records(store, files)
        card = _card(store, files)
        licenses = sorted(
            {
                metadata.normalise_license(x)
                for x in [*req.licenses, *(card.licenses if card else [])]
            }
        )
        statement = signing.make_statement(
            repository=f"{repo.kind}s/{repo.repo_id}",
            version=number,
            files=files,
            licenses=licenses,
        )
        envelope = signing.sign_statement(
            statement, registry.signer, registry.signer.verifier_key()
        )
        digest = signing.statement_digest(envelope)
        commit = digest[:40]
        doc = None
        if repo.kind == RepoKind.DATASET:
            doc = croissant_doc.describe(
                repository=repo.repo_id,
                version=number,
                files=files,
                locals_={f["path"]: store.path(f["blake3"]) for f in files},
                base_url=registry.base_url,
                commit=commit,
                licenses=licenses,
                declared=req.croissant,
            )
            if req.croissant is not None or _croissant_available():
                croissant_doc.validate(doc)
        elif req.croissant is not None:
            raise InvalidInput("croissant describes datasets; a model carries a model card")
        version = Version(
            repo_id=repo.id,
            number=number,
            commit=commit,
            statement_sha256=digest,
            envelope=envelope,
            message=req.message,
            licenses=licenses,
            license_flags=_license_flags(licenses, files),
            card={"meta": card.meta, "body": card.body} if card else None,
            croissant=doc,
            sources=req.sources,
            job=job,
            total_bytes=sum(f["size"] for f in files),
            created_by=actor.pseudonym,
        )
        db.add(version)
        db.flush()
        db.add_all(VersionFile(version_id=version.id, **f) for f in files)
        edges = [*sources, *_read_lineage(repo, read, sources)]
        for source, relation in edges:
            db.add(
                LineageEdge(version_id=version.id, source_id=source.id, relation=relation, job=job)
            )
        db.execute(
            delete(Upload).where(
                Upload.repo_id == repo.id,
                Upload.state == UploadState.COMPLETE,
                Upload.person_id == actor.person_id,
                Upload.blake3.in_({f["blake3"] for f in files}),
            )
        )
        event = (
            ArtifactsEvent.DatasetPublished
            if repo.kind == RepoKind.DATASET
            else ArtifactsEvent.ModelPublished
        )
        signature = envelope["signatures"][0]
        public = {
            "commit": commit,
            "statement_sha256": digest,
            "signature": signature["sig"],
            "key": signature["keyid"],
            "files": len(files),
            "bytes": version.total_bytes,
            "level": Level(repo.level).label,
        }
        clear, committed = _publication_details(repo, licenses, job, edges)
        record.append(
            db,
            event,
            actor=actor,
            subject=_subject(repo, number),
            data={**public, **clear},
            private=committed,
        )
        if req.tag:
            _set_tag(db, actor, repo, req.tag, version, move=False)
    return version


def _publication_details(
    repo: Repo, licenses: list[str], job: str | None, edges: list[tuple[Version, Relation]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new version's licences, lineage (named and read) and job as its entry says them:
    (in clear, committed).

    A non-public version commits to all of it. A public one names its public sources and
    commits to the others (`lineage_private`): the record cannot be redacted, so the name of
    a source that is not public never enters it in clear."""
    lineage = [f"{relation}:{_ref(source)}" for source, relation in edges]
    details = {"licenses": licenses, "lineage": lineage, "job": job}
    if not _public(repo):
        return {}, details
    shown: list[str] = []
    withheld: list[str] = []
    for ref, (source, _) in zip(lineage, edges, strict=True):
        (shown if _public(source.repo) else withheld).append(ref)
    return {**details, "lineage": shown}, ({"lineage_private": withheld} if withheld else {})


def split_public_refs(db: Session, refs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Version references split into those of public CL-1 repositories and the rest, in order:
    what the record may name in clear and what it only commits to. A reference that names no
    repository goes with the rest (fail closed)."""
    public: list[str] = []
    others: list[str] = []
    for ref in refs:
        try:
            kind, namespace, name, _ = parse_ref(ref)
            repo = _find_repo(db, kind, namespace, name)
        except (ValueError, NotFound):
            others.append(ref)
            continue
        (public if _public(repo) else others).append(ref)
    return public, others


def visible_refs(db: Session, actor: Principal, refs: Iterable[str]) -> set[str]:
    """Which of these version references `actor` may know exist: by the decision opening the
    repository takes (`_readable`), so another domain showing a job's inputs names no more
    than a read would. In the caller's transaction; nothing is noted (naming a version is not
    reading it). A reference that names no repository is not visible (fail closed)."""
    visible: set[str] = set()
    for ref in refs:
        try:
            kind, namespace, name, _ = parse_ref(ref)
            repo = _find_repo(db, kind, namespace, name)
        except (ValueError, NotFound):
            continue
        if _readable(actor, repo):
            visible.add(ref)
    return visible


def _croissant_available() -> bool:
    try:
        import mlcroissant  # noqa: F401
    except ImportError:
        return False
    return True


def _lineage_sources(
    db: Session, actor: Principal, req: VersionCreate
) -> list[tuple[Version, Relation]]:
    sources = []
    for item in req.lineage:
        kind, ns, name, number = parse_ref(item.ref)
        source_repo = _find_repo(db, kind, ns, name)
        _authorize_read(actor, source_repo)
        source = _resolve(db, source_repo, str(number))
        sources.append((source, item.relation))
    return sources


def _check_facility_job(
    db: Session, actor: Principal, job: str | None, sources: list[tuple[Version, Relation]]
) -> tuple[str | None, list[_Read]]:
    """Which job a version comes from, and everything that job read. A job's own token
    publishes as that job, named or not. A job named by its number is one of this facility's
    (compute): it must be the publisher's own, and the lineage may name only what it read
    (its declared inputs, which admission checked against its level, or what the facility
    saw it read). Other names are external jobs, shown as given."""
    acting = actor.job_id
    if acting is not None:
        if job not in (None, str(acting)):
            raise InvalidInput(
                f"this token is job {acting}'s: what it publishes comes from job {acting}; "
                f"leave job out or name {acting}, not {job!r}"
            )
        job = str(acting)
    if job is None or not job.isdigit():
        return job, []
    inputs = compute.inputs_of_own_job(db, actor, int(job)) if len(job) < 12 else None
    if inputs is None:
        raise InvalidInput(
            f"job {job} is not a job of yours on this facility: name the job that produced "
            "these files (inside a job, $COMMONLAB_JOB_ID)"
        )
    read = [
        _Read(row.repo, row.version)
        for row in db.scalars(select(JobRead).where(JobRead.job_id == int(job)))
    ]
    known = set(inputs) | {_ref(r.version) for r in read if r.version is not None}
    for source, _ in sources:
        ref = _ref(source)
        if ref not in known:
            named = ", ".join(sorted(known)) or "nothing"
            raise InvalidInput(
                f"job {job} did not read {ref} (it read: {named}): lineage names only what "
                "the job read"
            )
    for ref in inputs:
        kind, namespace, name, number = parse_ref(ref)
        declared = _find_repo(db, kind, namespace, name)
        version = db.scalar(
            select(Version).where(Version.repo_id == declared.id, Version.number == number)
        )
        read.append(_Read(declared, version))
    return job, read


@dataclass(frozen=True)
class _Read:
    """A repository a job read (its declared inputs included), and the version when known."""

    repo: Repo
    version: Version | None


def _check_no_write_down(repo: Repo, job: str | None, read: list[_Read]) -> None:
    """No write-down: a version a job publishes is at least as contained as everything the
    job read, declared or not: the level, every compartment, and the audience (no more
    visible: `rules.reaches_beyond`). Artifacts has no release path (an approved, recorded
    lowering) yet, so nothing bypasses this. Refused, not raised: the publisher chooses where
    it goes, and the answer says which read asks for what."""
    for item in sorted(read, key=lambda r: -r.repo.level):
        source = item.repo
        what = (
            _ref(item.version) if item.version is not None else f"{source.kind}s/{source.repo_id}"
        )
        if source.level > repo.level:
            raise InvalidInput(
                f"job {job} read {what} ({Level(source.level).label}): what it publishes must "
                f"be {Level(source.level).label} or above, and {repo.kind}s/{repo.repo_id} is "
                f"{Level(repo.level).label}: publish into a repository at "
                f"{Level(source.level).label} or above"
            )
        missing = sorted(set(source.compartments) - set(repo.compartments))
        if missing:
            raise InvalidInput(
                f"job {job} read {what}, in compartment(s) {', '.join(missing)}: what it "
                f"publishes must be in them too, and {repo.kind}s/{repo.repo_id} is not"
            )
        read_by, shown_to = _audience(source), _audience(repo)
        if reaches_beyond(shown_to, read_by):
            raise InvalidInput(
                f"job {job} read {what} ({read_by.describe()}): what it publishes may be "
                f"shown to no one that is not, and {repo.kind}s/{repo.repo_id} is "
                f"{shown_to.describe()}: publish into a repository no more visible"
            )


def _audience(repo: Repo) -> Audience:
    return Audience(Visibility(repo.visibility), repo.project, repo.owner_id)


def _read_lineage(
    repo: Repo, read: list[_Read], sources: list[tuple[Version, Relation]]
) -> list[tuple[Version, Relation]]:
    """The versions the job read that the lineage does not name already: added as 'read'
    (earlier versions of the repository published to are its history, not its lineage)."""
    named = {source.id for source, _ in sources}
    added: dict[int, Version] = {}
    for item in read:
        version = item.version
        if version is not None and version.id not in named and version.repo_id != repo.id:
            added[version.id] = version
    return [(version, Relation.READ) for version in added.values()]


def _check_weight_stamps(
    files: list[dict[str, Any]], *, repository: str, version: int, job: str | None
) -> None:
    """Weights that say which version and job they are (`commonlab model push --stamp`)
    must say what this version is: a stamp left from another push is refused."""
    for f in files:
        stamp = (f["meta"] or {}).get("metadata") or {}
        wrong = metadata.stamp_mismatches(stamp, repository=repository, version=version, job=job)
        if wrong:
            raise InvalidInput(
                f"{f['path']}: {'; '.join(wrong)}: stamp the weights again (push --stamp)"
            )


def _gather_files(
    db: Session, actor: Principal, repo: Repo, store: ObjectStore, req: VersionCreate
) -> tuple[list[dict[str, Any]], set[str]]:
    """Each file's size and hashes, from this person's finished uploads or earlier versions;
    and the addresses that came from uploads (not yet made durable by a publish)."""
    wanted = {f.blake3 for f in req.files}
    held: dict[str, tuple[int, str]] = {}
    for b3, size, sha in db.execute(
        select(Upload.blake3, Upload.size, Upload.sha256).where(
            Upload.repo_id == repo.id,
            Upload.person_id == actor.person_id,
            Upload.state == UploadState.COMPLETE,
            Upload.blake3.in_(wanted),
        )
    ):
        held[b3] = (size, sha)
    uploaded = set(held)
    for b3, size, sha in db.execute(
        select(VersionFile.blake3, VersionFile.size, VersionFile.sha256)
        .join(Version)
        .where(Version.repo_id == repo.id, VersionFile.blake3.in_(wanted - held.keys()))
    ):
        held[b3] = (size, sha)
    files = []
    for entry in req.files:
        if entry.blake3 not in held or not store.holds(entry.blake3, held[entry.blake3][0]):
            raise InvalidInput(
                f"{entry.path}: no finished upload of yours, and no earlier version of this "
                f"repository, holds BLAKE3 {entry.blake3}: upload the file first"
            )
        size, sha = held[entry.blake3]
        media = entry.media_type or metadata.media_type(entry.path)
        meta: dict[str, Any] = {}
        if entry.path.endswith(".safetensors"):
            with store.open(entry.blake3) as fh:
                meta = metadata.read_safetensors_header(fh, size, path=entry.path)
        files.append(
            {
                "path": entry.path,
                "size": size,
                "blake3": entry.blake3,
                "sha256": sha,
                "media_type": media,
                "meta": meta,
            }
        )
    return files, uploaded & {f["blake3"] for f in files}


def _summarize_records(store: ObjectStore, files: list[dict[str, Any]]) -> None:
    """Read once, at publish, what each record file's records say of their sources and
    licences (kept in the file's meta: no table holds records). A file that cannot be read
    is published as given, with the reason, as the record viewer would say it."""
    for f in files:
        if records.record_format(f["path"]) is None:
            continue
        try:
            summary = records.summarize(store.path(f["blake3"]), f["path"])
        except InvalidInput as exc:
            f["meta"] = {**f["meta"], "records_error": exc.message}
        else:
            f["meta"] = {**f["meta"], "records": summary}


def record_licenses(files: Iterable[Any]) -> dict[str, int]:
    """Licences the records of these files state, with how many records state each."""
    found: dict[str, int] = {}
    for f in files:
        meta = f["meta"] if isinstance(f, dict) else f.meta
        for name, count in ((meta or {}).get("records") or {}).get("licenses", {}).items():
            found[name] = found.get(name, 0) + count
    return found


def record_sources(files: Iterable[Any]) -> list[str]:
    """The most common sources the records of these files state."""
    seen: dict[str, int] = {}
    for f in files:
        meta = f["meta"] if isinstance(f, dict) else f.meta
        for name, count in ((meta or {}).get("records") or {}).get("sources", []):
            seen[name] = seen.get(name, 0) + count
    return [name for name, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))][:20]


def _license_flags(licenses: list[str], files: list[dict[str, Any]]) -> list[str]:
    """The version's declared licences and its records' own, checked together: a record under
    a licence that cannot be combined with the rest is as much a problem as a declared one."""
    from_records = sorted(set(record_licenses(files)) - set(licenses))
    flags = metadata.license_flags([*licenses, *from_records])
    return [
        f"{flag} (stated by records)" if any(x in flag for x in from_records) else flag
        for flag in flags
    ]


def _card(store: ObjectStore, files: list[dict[str, Any]]) -> metadata.ModelCard | None:
    readme = next((f for f in files if f["path"] == "README.md"), None)
    if readme is None:
        return None
    if readme["size"] > 1 << 20:
        raise InvalidInput("README.md: a card is at most 1 MiB")
    with store.open(readme["blake3"]) as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("README.md: the card is not UTF-8 text") from None
    return metadata.parse_card(text)


@dataclass(frozen=True)
class VersionView:
    """A version as one principal may see it: its manifest (files, sizes, digests, licences,
    signature) whenever they may read the repository; what was read out of its content at
    publish (the card, the Croissant schema, records' sources and licences, weights' header
    metadata) only when they may read the content itself, as a download would."""

    version: Version
    # Why the content (and so what was read from it) is withheld; None when it is not.
    withheld: str | None

    @property
    def content(self) -> bool:
        return self.withheld is None

    @property
    def card(self) -> dict[str, Any] | None:
        return self.version.card if self.content else None

    @property
    def croissant(self) -> dict[str, Any] | None:
        return self.version.croissant if self.content else None

    def meta(self, entry: VersionFile) -> dict[str, Any]:
        return (entry.meta or {}) if self.content else {}


def get_version(
    db: Session,
    actor: Principal,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    rev: str | None,
) -> Version:
    """A version's manifest, read as the repository is (and recorded above CL-1)."""
    return read_version(db, actor, kind, namespace, name, rev).version


def read_version(
    db: Session,
    actor: Principal,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    rev: str | None,
) -> VersionView:
    """A version as `actor` may see it (see VersionView); recorded above CL-1, and noted as
    read when a job reads it."""
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_read(actor, repo)
        version = _resolve(db, repo, rev)
        if repo.level >= Level.CL2:
            record.append(
                db,
                ArtifactsEvent.Read,
                actor=actor,
                subject=_subject(repo, version.number),
                data={"level": Level(repo.level).label},
            )
        _note_job_read(db, actor, repo, version)
        _ = version.repo, version.files, [tag.version for tag in repo.tags], repo.versions
    return VersionView(version, _content_denial(actor, repo))


def open_file(
    db: Session,
    actor: Principal,
    registry: Registry,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    rev: str | None,
    path: str,
) -> tuple[Version, VersionFile, Path]:
    """Authorize a download (recorded before it is served above CL-1); the file to send."""
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_read(actor, repo)
        version = _resolve(db, repo, rev)
        entry = db.scalar(
            select(VersionFile).where(
                VersionFile.version_id == version.id, VersionFile.path == path
            )
        )
        _note_job_read(db, actor, repo, version)
        if entry is None:
            raise FileNotInVersion(f"{repo.repo_id}@{version.number} has no file {path!r}")
        subject = _subject(repo, version.number)
        try:
            authorize(actor, Action.ArtifactsDownload, _resource(repo), _ctx(repo))
        except AccessDenied as exc:
            denial = exc
        else:
            denial = None
            if repo.level >= Level.CL2:
                record.append(
                    db,
                    ArtifactsEvent.Downloaded,
                    actor=actor,
                    subject=subject,
                    private={"path": path, "sha256": entry.sha256},
                    data={"level": Level(repo.level).label},
                )
    if denial is not None:
        if repo.level >= Level.CL2:
            with db.begin():
                record.append(
                    db,
                    ArtifactsEvent.DownloadRefused,
                    actor=actor,
                    subject=subject,
                    data={"level": Level(repo.level).label},
                    # The reason may name the repository's compartments or project.
                    private={"path": path, "reason": denial.message},
                )
        raise denial
    return version, entry, registry.store.path(entry.blake3)


def open_records(
    db: Session,
    actor: Principal,
    registry: Registry,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    rev: str | None,
    path: str,
) -> tuple[Version, Path, records.Fallback]:
    """A dataset file to read records from: reading records is reading content, so it is
    authorized (and above CL-1 recorded) as a download of that file; CL-3+ is never read."""
    if kind != RepoKind.DATASET:
        raise NotFound("records are read from dataset versions; a model has files")
    metadata.check_path(path)
    records.check_format(path)  # before the read is recorded: nothing to read in other files
    version, _, local = open_file(db, actor, registry, kind, namespace, name, rev, path)
    return version, local, records.Fallback(list(version.licenses), list(version.sources or []))


# Tags ---------------------------------------------------------------------------------------


def set_tag(
    db: Session,
    actor: Principal,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    tag: str,
    req: TagSet,
) -> tuple[Tag, bool]:
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_write(actor, repo)
        version = _resolve(db, repo, str(req.version))
        row, moved = _set_tag(db, actor, repo, tag, version, move=req.move)
    return row, moved


def _set_tag(
    db: Session, actor: Principal, repo: Repo, name: str, version: Version, *, move: bool
) -> tuple[Tag, bool]:
    if name in ("main", "latest", "HEAD"):
        raise InvalidInput(f"{name!r} always names the newest version; choose another tag")
    tag = db.scalar(select(Tag).where(Tag.repo_id == repo.id, Tag.name == name))
    if tag is not None and tag.version_id == version.id:
        return tag, False
    if tag is not None and not move:
        raise Conflict(
            f"tag {name!r} already names version {tag.version.number}: pass move=true to move "
            "it (the move is recorded)"
        )
    previous = tag.version.number if tag is not None else None
    if tag is None:
        tag = Tag(repo_id=repo.id, name=name, version_id=version.id)
        db.add(tag)
    else:
        tag.version_id = version.id
        tag.moved_at = utcnow()
    db.flush()
    db.refresh(tag)
    record.append(
        db,
        ArtifactsEvent.TagMoved if previous is not None else ArtifactsEvent.TagCreated,
        actor=actor,
        subject=_subject(repo),
        data={
            "version": version.number,
            "commit": version.commit,
            "from": previous,
            **({"tag": name} if _public(repo) else {}),
        },
        private=None if _public(repo) else {"tag": name},
    )
    return tag, previous is not None


# Lineage -----------------------------------------------------------------------------------


def _ref(version: Version) -> str:
    return f"{version.repo.kind}s/{version.repo.repo_id}@{version.number}"


def lineage(
    db: Session,
    actor: Principal,
    kind: RepoKind | str,
    namespace: str,
    name: str,
    rev: str | None,
    *,
    direction: str = "up",
) -> dict[str, Any]:
    """'up': what went into it, down to dataset versions and their sources; 'down': what was
    built from it. A version the principal may not read is a 'withheld' node without its
    name, and so is every edge's end at it: the API, PROV and the portal all draw this."""
    with db.begin():
        repo = _find_repo(db, kind, namespace, name)
        _authorize_read(actor, repo)
        root = _resolve(db, repo, rev)
        _note_job_read(db, actor, repo, root)
        nodes: dict[int, dict[str, Any]] = {root.id: _node(actor, root)}
        edges: list[dict[str, Any]] = []
        frontier = [root]
        while frontier and len(nodes) < MAX_LINEAGE_NODES:
            current = frontier.pop()
            if nodes[current.id].get("withheld"):
                continue  # what lies beyond a withheld version is not the principal's to see
            column = LineageEdge.version_id if direction == "up" else LineageEdge.source_id
            for edge in db.scalars(select(LineageEdge).where(column == current.id)):
                other = edge.source if direction == "up" else edge.version
                if other.id not in nodes:
                    nodes[other.id] = _node(actor, other)
                    frontier.append(other)
                edges.append(_edge(edge, nodes[edge.version_id], nodes[edge.source_id]))
        return {
            "root": _ref(root),
            "direction": direction,
            "nodes": sorted(nodes.values(), key=lambda n: n["ref"]),
            "edges": edges,
        }


def _edge(edge: LineageEdge, version: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """An edge between two drawn nodes, named as they are: its job only when both are shown
    (the job that made a withheld version is as withheld as the version)."""
    withheld = version.get("withheld") or source.get("withheld")
    return {
        "from": version["ref"],
        "to": source["ref"],
        "relation": edge.relation,
        "job": None if withheld else edge.job,
    }


def _node(actor: Principal, version: Version) -> dict[str, Any]:
    ref = _ref(version)
    try:
        _authorize_read(actor, version.repo)
    except (AccessDenied, NotFound):
        return {"ref": f"artifact/{version.repo.id}@{version.number}", "withheld": True}
    return {
        "ref": ref,
        "kind": version.repo.kind,
        "commit": version.commit,
        "licenses": version.licenses,
        "job": version.job,
        "sources": version.sources,
        # What the records say is read from their content: shown with the content only.
        **(
            {}
            if _content_denial(actor, version.repo)
            else {
                "record_sources": record_sources(version.files),
                "record_licenses": record_licenses(version.files),
            }
        ),
        "created_at": record.format_time(version.created_at),
    }


def prov_document(graph: dict[str, Any], *, base_url: str) -> dict[str, Any]:
    """A lineage graph as W3C PROV-JSON: versions are entities, jobs are activities."""
    entity: dict[str, Any] = {}
    activity: dict[str, Any] = {}
    used: dict[str, Any] = {}
    generated: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    for node in graph["nodes"]:
        attrs: dict[str, Any] = {"prov:type": node.get("kind", "withheld")}
        if not node.get("withheld"):
            attrs["prov:label"] = node["ref"]
            attrs["commonlab:commit"] = node["commit"]
            attrs["commonlab:licenses"] = " ".join(node["licenses"])
            if node.get("record_licenses"):
                attrs["commonlab:recordLicenses"] = " ".join(sorted(node["record_licenses"]))
            if node.get("record_sources"):
                attrs["commonlab:recordSources"] = " ".join(node["record_sources"])
            if node.get("job"):
                job = f"job:{node['job']}"
                activity.setdefault(job, {"prov:type": "commonlab:job"})
                generated[f"_:gen{len(generated)}"] = {
                    "prov:entity": node["ref"],
                    "prov:activity": job,
                }
            for i, source in enumerate(node.get("sources") or []):
                src_id = f"source:{node['ref']}#{i}"
                entity[src_id] = {
                    "prov:type": "commonlab:source",
                    **{f"commonlab:{k}": str(v) for k, v in source.items()},
                }
                derived[f"_:src{len(derived)}"] = {
                    "prov:generatedEntity": node["ref"],
                    "prov:usedEntity": src_id,
                }
        entity[node["ref"]] = attrs
    for i, edge in enumerate(graph["edges"]):
        derived[f"_:der{i}"] = {
            "prov:generatedEntity": edge["from"],
            "prov:usedEntity": edge["to"],
            "prov:type": f"commonlab:{edge['relation']}",
        }
        if edge.get("job"):
            job = f"job:{edge['job']}"
            activity.setdefault(job, {"prov:type": "commonlab:job"})
            used[f"_:use{i}"] = {"prov:activity": job, "prov:entity": edge["to"]}
    return {
        "prefix": {
            "commonlab": f"{base_url}/ns/prov#",
            "models": f"{base_url}/artifacts/models/",
            "datasets": f"{base_url}/artifacts/datasets/",
            "job": f"{base_url}/jobs/",
            "source": f"{base_url}/sources/",
        },
        "entity": entity,
        "activity": activity,
        "used": used,
        "wasGeneratedBy": generated,
        "wasDerivedFrom": derived,
    }


# Garbage collection ------------------------------------------------------------------------


def collect_garbage(db: Session, actor: Principal, registry: Registry) -> dict[str, int]:
    """Remove objects no version references; refused while any upload is open."""
    store = registry.store
    with db.begin():
        authorize(actor, Action.ArtifactsCollect, Resource("artifact", "*"))
        now = utcnow()
        expired = db.scalars(select(Upload).where(Upload.expires_at <= now)).all()
        for upload in expired:
            store.discard_upload(upload.id)
            db.delete(upload)
        db.flush()
        open_count = db.scalar(
            select(func.count()).where(Upload.state == UploadState.OPEN)
        ) or 0  # fmt: skip
        if open_count or set(store.open_part_files()) - {u.id for u in expired}:
            raise Conflict(
                f"{open_count or 'some'} upload(s) are open: collect when they finish or expire"
            )
        with store.exclusive():
            referenced = set(db.scalars(select(VersionFile.blake3).distinct()))
            referenced |= {
                b3 for b3 in db.scalars(select(Upload.blake3).where(Upload.blake3.is_not(None)))
            }
            removed = freed = 0
            for b3 in list(store.all_objects()):
                if b3 not in referenced:
                    freed += store.remove(b3)
                    removed += 1
        record.append(
            db,
            ArtifactsEvent.GarbageCollected,
            actor=actor,
            as_role=Role.OPERATOR,
            subject="artifacts/store",
            data={"removed": removed, "bytes": freed, "expired_uploads": len(expired)},
        )
    return {"removed": removed, "bytes": freed, "expired_uploads": len(expired)}


def project_outputs(
    db: Session, actor: Principal, project: str, *, jobs: Iterable[str], limit: int = 50
) -> list[Version]:
    """The newest versions a project made: in its repositories, or published by one of its
    `jobs` (ids as versions name them). Each is kept only if `actor` may read its repository
    (`_readable`, the one decision), so the list never names what opening it would refuse."""
    query = (
        select(Version)
        .join(Repo, Repo.id == Version.repo_id)
        .where(or_(Repo.project == project, Version.job.in_(list(jobs))))
        .order_by(Version.id.desc())
    )
    found: list[Version] = []
    with db.begin():
        for version in db.scalars(query):
            if _readable(actor, version.repo):
                found.append(version)
                if len(found) == limit:
                    break
    return found
