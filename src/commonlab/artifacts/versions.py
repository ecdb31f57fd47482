"""Reading versions: which version a revision names, a version's manifest and what was read
from its content (as one principal may see them), downloads and dataset rows (recorded above
CL-1), and version references as other domains name them (a job's inputs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import dataset_rows, metadata
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import Repo, RepoKind, Tag, Version, VersionFile
from commonlab.artifacts.refs import RepoRef, VersionRef, parse_ref
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.repos import (
    authorize_read,
    content_denial,
    context_of,
    find_repo,
    is_public,
    note_job_read,
    readable,
    resource_of,
    subject_of,
)
from commonlab.errors import AccessDenied, NotFound
from commonlab.policy import Action, authorize
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = [
    "FileNotInVersion",
    "RevisionNotFound",
    "VersionFacts",
    "VersionView",
    "facts_of",
    "files_with_sha256",
    "get_version",
    "list_versions",
    "may_read",
    "open_file",
    "open_files",
    "open_records",
    "project_outputs",
    "read_version",
    "record_licenses",
    "record_sources",
    "ref_of",
    "resolve",
    "split_public_refs",
    "version_facts",
    "version_level",
    "visible_refs",
]


class RevisionNotFound(NotFound):
    """The repository exists, but no version answers to that revision."""


class FileNotInVersion(NotFound):
    """The version exists, but holds no file at that path."""


def ref_of(version: Version) -> str:
    """How a version is named in lineage, a job's inputs and the record: `datasets/ns/name@3`."""
    return f"{version.repo.kind}s/{version.repo.repo_id}@{version.number}"


def resolve(db: Session, repo: Repo, rev: str | None) -> Version:
    """The version of `repo` that `rev` names: a number, a tag, a commit prefix, or
    main/latest/HEAD (and None) for the newest."""
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


def list_versions(
    db: Session, actor: Principal, ref: RepoRef, *, after: int | None = None, limit: int = 50
) -> tuple[list[Version], int | None]:
    """One page of a repository's versions (by number), read as the repository is."""
    with db.begin():
        repo = find_repo(db, ref)
        authorize_read(actor, repo)
        note_job_read(db, actor, repo)
        query = select(Version).where(Version.repo_id == repo.id)
        if after is not None:
            query = query.where(Version.number > after)
        rows = db.scalars(query.order_by(Version.number).limit(limit + 1)).all()
        for version in rows:
            _ = version.files
    page = list(rows[:limit])
    return page, page[-1].number if len(rows) > limit else None


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


def get_version(db: Session, actor: Principal, ref: VersionRef) -> Version:
    """A version's manifest, read as the repository is (and recorded above CL-1)."""
    return read_version(db, actor, ref).version


def read_version(db: Session, actor: Principal, ref: VersionRef) -> VersionView:
    """A version as `actor` may see it (see VersionView); recorded above CL-1, and noted as
    read when a job reads it."""
    with db.begin():
        version = _read(db, actor, ref)
        repo = version.repo
        _ = version.files, [tag.version for tag in repo.tags], repo.versions
    return VersionView(version, content_denial(actor, repo))


def version_level(db: Session, actor: Principal, ref: str) -> int:
    """The containment level of the version `ref` names (`datasets/ns/name@3`), read as
    `actor` would read it (one they may not read is not found; a read above CL-1 is
    recorded). In the caller's transaction: a job's admission reads its inputs so.
    ValueError when `ref` is not a version reference."""
    return int(_read(db, actor, parse_ref(ref)).repo.level)


@dataclass(frozen=True)
class VersionFacts:
    """What another domain may hold of a version it read: its reference pinned to the
    number, its level, the project owning its repository (None: a person's), whether the
    public may read it (so the record may name it in clear), and the job that published it
    (as versions name jobs: a facility job's id, or an external name)."""

    ref: str
    level: int
    project: str | None
    public: bool
    job: str | None
    created_at: datetime | None = None


def version_facts(db: Session, actor: Principal, ref: str) -> VersionFacts:
    """The facts of the version `ref` names, read as `actor` would read it (one they may not
    read is not found; a read above CL-1 is recorded), in the caller's transaction: a use
    case that checks what a version is within its own. ValueError when `ref` is not a
    version reference pinned to a number (`datasets/ns/name@3`)."""
    return facts_of(_read(db, actor, parse_ref(ref)))


def facts_of(version: Version) -> VersionFacts:
    repo = version.repo
    return VersionFacts(
        ref_of(version),
        int(repo.level),
        repo.project,
        is_public(repo),
        version.job,
        version.created_at,
    )


def may_read(db: Session, actor: Principal, ref: str) -> bool:
    """Whether `actor` may read the version `ref` names (nothing is recorded: this is the
    question a list asks before it shows a name); False for what is not a version."""
    try:
        named = parse_ref(ref)
        repo = find_repo(db, named.repo)
        resolve(db, repo, named.rev)
    except (ValueError, NotFound):
        return False
    return readable(actor, repo)


def files_with_sha256(db: Session, ref: str, sha256: str) -> list[str]:
    """The paths of the version `ref` names whose SHA-256 is `sha256`, whoever asks (the
    facility matching an opt-out; callers authorize what they show); in the caller's
    transaction."""
    named = parse_ref(ref)
    version = resolve(db, find_repo(db, named.repo), named.rev)
    return list(
        db.scalars(
            select(VersionFile.path).where(
                VersionFile.version_id == version.id, VersionFile.sha256 == sha256
            )
        )
    )


def _read(db: Session, actor: Principal, ref: VersionRef) -> Version:
    repo = find_repo(db, ref.repo)
    authorize_read(actor, repo)
    version = resolve(db, repo, ref.rev)
    if repo.level >= Level.CL2:
        record.append(
            db,
            ArtifactsEvent.Read,
            actor=actor,
            subject=subject_of(repo, version.number),
            data={"level": Level(repo.level).label},
        )
    note_job_read(db, actor, repo, version)
    return version


def open_file(
    db: Session, actor: Principal, registry: Registry, ref: VersionRef, path: str
) -> tuple[Version, VersionFile, Path]:
    """Authorize a download (recorded before it is served above CL-1); the file to send."""
    version, opened = open_files(db, actor, registry, ref, [path])
    entry, local = opened[path]
    return version, entry, local


def open_files(
    db: Session,
    actor: Principal,
    registry: Registry,
    ref: VersionRef,
    paths: Iterable[str] | None = None,
) -> tuple[Version, dict[str, tuple[VersionFile, Path]]]:
    """Authorize one read of a version's content (recorded before it is served above CL-1,
    refused and recorded so when denied); the stored files at `paths` (every file when
    None), each with its entry. A search reads an index's files as one download."""
    wanted = None if paths is None else list(paths)
    with db.begin():
        repo = find_repo(db, ref.repo)
        authorize_read(actor, repo)
        version = resolve(db, repo, ref.rev)
        query = select(VersionFile).where(VersionFile.version_id == version.id)
        if wanted is not None:
            query = query.where(VersionFile.path.in_(wanted))
        entries = {entry.path: entry for entry in db.scalars(query)}
        note_job_read(db, actor, repo, version)
        missing = [path for path in wanted or () if path not in entries]
        if missing:
            raise FileNotInVersion(f"{repo.repo_id}@{version.number} has no file {missing[0]!r}")
        subject = subject_of(repo, version.number)
        try:
            authorize(actor, Action.ArtifactsDownload, resource_of(repo), context_of(repo))
        except AccessDenied as exc:
            denial = exc
        else:
            denial = None
            if repo.level >= Level.CL2:
                one = next(iter(entries.values()), None) if len(entries) == 1 else None
                record.append(
                    db,
                    ArtifactsEvent.Downloaded,
                    actor=actor,
                    subject=subject,
                    private={"path": one.path, "sha256": one.sha256}
                    if one is not None
                    else {"paths": sorted(entries)[:100], "files": len(entries)},
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
                    private={"path": wanted[0] if wanted else "*", "reason": denial.message},
                )
        raise denial
    return version, {
        path: (entry, registry.store.path(entry.blake3)) for path, entry in entries.items()
    }


def open_records(
    db: Session, actor: Principal, registry: Registry, ref: VersionRef, path: str
) -> tuple[Version, Path, dataset_rows.Fallback]:
    """A dataset file to read records from: reading records is reading content, so it is
    authorized (and above CL-1 recorded) as a download of that file; CL-3+ is never read."""
    if ref.repo.kind != RepoKind.DATASET:
        raise NotFound("records are read from dataset versions; a model has files")
    metadata.check_path(path)
    dataset_rows.check_format(path)  # before the read is recorded: nothing to read elsewhere
    version, _, local = open_file(db, actor, registry, ref, path)
    fallback = dataset_rows.Fallback(list(version.licenses), list(version.sources or []))
    return version, local, fallback


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


# Versions as other domains name them -----------------------------------------------------------


def split_public_refs(db: Session, refs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Version references split into those of public CL-1 repositories and the rest, in order:
    what the record may name in clear and what it only commits to. A reference that names no
    repository goes with the rest (fail closed)."""
    public: list[str] = []
    others: list[str] = []
    for ref in refs:
        try:
            repo = find_repo(db, parse_ref(ref).repo)
        except (ValueError, NotFound):
            others.append(ref)
            continue
        (public if is_public(repo) else others).append(ref)
    return public, others


def visible_refs(db: Session, actor: Principal, refs: Iterable[str]) -> set[str]:
    """Which of these version references `actor` may know exist: by the decision opening the
    repository takes (`readable`), so another domain showing a job's inputs names no more
    than a read would. In the caller's transaction; nothing is noted (naming a version is not
    reading it). A reference that names no repository is not visible (fail closed)."""
    visible: set[str] = set()
    for ref in refs:
        try:
            repo = find_repo(db, parse_ref(ref).repo)
        except (ValueError, NotFound):
            continue
        if readable(actor, repo):
            visible.add(ref)
    return visible


def project_outputs(
    db: Session, actor: Principal, project: str, *, jobs: Iterable[str], limit: int = 50
) -> list[Version]:
    """The newest versions a project made: in its repositories, or published by one of its
    `jobs` (ids as versions name them). Each is kept only if `actor` may read its repository
    (`readable`, the one decision), so the list never names what opening it would refuse."""
    query = (
        select(Version)
        .join(Repo, Repo.id == Version.repo_id)
        .where(or_(Repo.project == project, Version.job.in_(list(jobs))))
        .order_by(Version.id.desc())
    )
    found: list[Version] = []
    with db.begin():
        for version in db.scalars(query):
            if readable(actor, version.repo):
                found.append(version)
                if len(found) == limit:
                    break
    return found
