"""Publishing a version: immutable, signed by the facility, from files uploaded (or held by
earlier versions), with its lineage held to what its job read (no write-down). In stages:
the rules first (a short read), then the work on the files outside any transaction (fsync,
headers, record summaries, the card, the signed statement, the Croissant description), then
one transaction that checks the rules again and writes the rows and the record entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts import croissant as croissant_doc
from commonlab.artifacts import dataset_rows, metadata, signing
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import (
    JobRead,
    LineageEdge,
    Relation,
    Repo,
    RepoKind,
    Upload,
    UploadState,
    Version,
    VersionFile,
    Visibility,
)
from commonlab.artifacts.ports import job_inputs
from commonlab.artifacts.refs import RepoRef, parse_ref
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.repos import (
    authorize_read,
    authorize_write,
    find_repo,
    is_public,
    subject_of,
)
from commonlab.artifacts.rules import Audience, reaches_beyond
from commonlab.artifacts.schemas import VersionCreate
from commonlab.artifacts.store import ObjectStore
from commonlab.artifacts.tags import tag_version
from commonlab.artifacts.versions import record_licenses, ref_of, resolve
from commonlab.db import lock_for_writing
from commonlab.errors import Conflict, InvalidInput
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = ["commit_version"]

# How often a publish is prepared again when other versions of the repository took the
# number it was prepared under (its statement is signed with the number).
_ATTEMPTS = 3


def commit_version(
    db: Session, actor: Principal, registry: Registry, ref: RepoRef, req: VersionCreate
) -> Version:
    """Publish an immutable, signed version from uploaded (or already held) files."""
    _check_paths(req)
    for _ in range(_ATTEMPTS):
        with db.begin():
            plan = _plan(db, actor, ref, req)
        prepared = _prepare(registry, plan, req)
        # The collector waits while the rows that name these objects are written.
        with registry.store.shared(), db.begin():
            lock_for_writing(db)
            again = _plan(db, actor, ref, req, lock_repo=True)
            if again.number == plan.number:
                _check_still_held(registry.store, again, prepared)
                return _write(db, actor, again, prepared, req)
    raise Conflict(
        f"{ref}: other versions were published while this one was prepared, {_ATTEMPTS} "
        "times: publish it again"
    )


# 1. The request alone -----------------------------------------------------------------------


def _check_paths(req: VersionCreate) -> None:
    paths = [metadata.check_path(f.path) for f in req.files]
    if len(set(paths)) != len(paths):
        raise InvalidInput("a path appears twice in files: each path names one file")
    folders = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    if clash := sorted(folders & set(paths)):
        raise InvalidInput(f"{clash[0]}: is both a file and a folder in files")


# 2. The rules (in a transaction: reads only, then again before the write) -------------------


@dataclass(frozen=True)
class _Read:
    """A repository a job read (its declared inputs included), and the version when known."""

    repo: Repo
    version: Version | None


@dataclass(frozen=True)
class _Plan:
    """What the rules allow this publish: the repository, its lineage and job, the number it
    takes, and the digests and size the database holds for each wanted file."""

    repo: Repo
    sources: list[tuple[Version, Relation]]
    job: str | None
    read: list[_Read]
    number: int
    held: dict[str, tuple[int, str]]  # BLAKE3 → (size, SHA-256)
    uploaded: set[str]  # of those, the ones from uploads (not yet made durable)


def _plan(
    db: Session, actor: Principal, ref: RepoRef, req: VersionCreate, *, lock_repo: bool = False
) -> _Plan:
    repo = find_repo(db, ref)
    authorize_write(actor, repo)
    if lock_repo:
        # PostgreSQL: publishes to one repository take numbers in turn (SQLite's write lock,
        # taken by the caller, already serializes them).
        db.execute(select(Repo.id).where(Repo.id == repo.id).with_for_update())
    sources = _lineage_sources(db, actor, req)
    job, read = _check_facility_job(db, actor, req.job, sources)
    _check_no_write_down(repo, job, read)
    if sources:
        authorize_write(actor, repo, data_level=max(v.repo.level for v, _ in sources))
    held, uploaded = _held_files(db, actor, repo, req)
    latest = db.scalar(select(func.max(Version.number)).where(Version.repo_id == repo.id))
    return _Plan(repo, sources, job, read, (latest or 0) + 1, held, uploaded)


def _lineage_sources(
    db: Session, actor: Principal, req: VersionCreate
) -> list[tuple[Version, Relation]]:
    sources = []
    for item in req.lineage:
        named = parse_ref(item.ref)
        source_repo = find_repo(db, named.repo)
        authorize_read(actor, source_repo)
        sources.append((resolve(db, source_repo, named.rev), item.relation))
    return sources


def _check_facility_job(
    db: Session, actor: Principal, job: str | None, sources: list[tuple[Version, Relation]]
) -> tuple[str | None, list[_Read]]:
    """Which job a version comes from, and everything that job read. A job's own token
    publishes as that job, named or not. A job named by its number is one of this facility's
    (compute, asked through `ports.job_inputs`): it must be the publisher's own, and the
    lineage may name only what it read (its declared inputs, which admission checked against
    its level, or what the facility saw it read). Other names are external jobs, shown as
    given."""
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
    inputs = job_inputs(db, actor, int(job)) if len(job) < 12 else None
    if inputs is None:
        raise InvalidInput(
            f"job {job} is not a job of yours on this facility: name the job that produced "
            "these files (inside a job, $COMMONLAB_JOB_ID)"
        )
    read = [
        _Read(row.repo, row.version)
        for row in db.scalars(select(JobRead).where(JobRead.job_id == int(job)))
    ]
    known = set(inputs) | {ref_of(r.version) for r in read if r.version is not None}
    for source, _ in sources:
        ref = ref_of(source)
        if ref not in known:
            named = ", ".join(sorted(known)) or "nothing"
            raise InvalidInput(
                f"job {job} did not read {ref} (it read: {named}): lineage names only what "
                "the job read"
            )
    for ref in inputs:
        declared_ref = parse_ref(ref)
        declared = find_repo(db, declared_ref.repo)
        version = db.scalar(
            select(Version).where(
                Version.repo_id == declared.id, Version.number == declared_ref.number
            )
        )
        read.append(_Read(declared, version))
    return job, read


def _check_no_write_down(repo: Repo, job: str | None, read: list[_Read]) -> None:
    """No write-down: a version a job publishes is at least as contained as everything the
    job read, declared or not: the level, every compartment, and the audience (no more
    visible: `rules.reaches_beyond`). Artifacts has no release path (an approved, recorded
    lowering) yet, so nothing bypasses this. Refused, not raised: the publisher chooses where
    it goes, and the answer says which read asks for what."""
    for item in sorted(read, key=lambda r: -r.repo.level):
        source = item.repo
        what = (
            ref_of(item.version) if item.version is not None else f"{source.kind}s/{source.repo_id}"
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


def _held_files(
    db: Session, actor: Principal, repo: Repo, req: VersionCreate
) -> tuple[dict[str, tuple[int, str]], set[str]]:
    """Size and SHA-256 of each wanted file, from this person's finished uploads or earlier
    versions of this repository; and the addresses that came from uploads."""
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
    return held, uploaded


# 3. The files (no transaction open) ---------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Everything read from the files and signed, before any row is written."""

    files: list[dict[str, Any]]
    licenses: list[str]
    card: metadata.ModelCard | None
    envelope: dict[str, Any]
    digest: str
    croissant: dict[str, Any] | None

    @property
    def commit(self) -> str:
        return self.digest[:40]


def _prepare(registry: Registry, plan: _Plan, req: VersionCreate) -> _Prepared:
    store = registry.store
    repo = plan.repo
    repository = f"{repo.kind}s/{repo.repo_id}"
    files = _read_files(store, plan.held, req)
    _check_weight_stamps(files, repository=repository, version=plan.number, job=plan.job)
    # Uploads are placed without fsync; a version is published only once its bytes are on
    # disk. Files of earlier versions were made durable when those were published.
    store.make_durable(plan.uploaded & {f["blake3"] for f in files})
    if repo.kind == RepoKind.DATASET:
        _summarize_records(store, files)
    card = _card(store, files)
    licenses = sorted(
        {metadata.normalise_license(x) for x in [*req.licenses, *(card.licenses if card else [])]}
    )
    statement = signing.make_statement(
        repository=repository, version=plan.number, files=files, licenses=licenses
    )
    envelope = signing.sign_statement(statement, registry.signer, registry.signer.verifier_key())
    digest = signing.statement_digest(envelope)
    doc = None
    if repo.kind == RepoKind.DATASET:
        doc = croissant_doc.describe(
            repository=repo.repo_id,
            version=plan.number,
            files=files,
            locals_={f["path"]: store.path(f["blake3"]) for f in files},
            base_url=registry.base_url,
            commit=digest[:40],
            licenses=licenses,
            declared=req.croissant,
        )
        if req.croissant is not None or _croissant_available():
            croissant_doc.validate(doc)
    elif req.croissant is not None:
        raise InvalidInput("croissant describes datasets; a model carries a model card")
    return _Prepared(files, licenses, card, envelope, digest, doc)


def _not_held(path: str, b3: str) -> InvalidInput:
    return InvalidInput(
        f"{path}: no finished upload of yours, and no earlier version of this repository, "
        f"holds BLAKE3 {b3}: upload the file first"
    )


def _read_files(
    store: ObjectStore, held: dict[str, tuple[int, str]], req: VersionCreate
) -> list[dict[str, Any]]:
    """Each file's entry in the manifest: size and digests, media type, and what a
    safetensors header says."""
    files = []
    for entry in req.files:
        if entry.blake3 not in held or not store.holds(entry.blake3, held[entry.blake3][0]):
            raise _not_held(entry.path, entry.blake3)
        size, sha = held[entry.blake3]
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
                "media_type": entry.media_type or metadata.media_type(entry.path),
                "meta": meta,
            }
        )
    return files


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


def _summarize_records(store: ObjectStore, files: list[dict[str, Any]]) -> None:
    """Read once, at publish, what each record file's records say of their sources and
    licences (kept in the file's meta: no table holds records). A file that cannot be read
    is published as given, with the reason, as the record viewer would say it."""
    for f in files:
        if dataset_rows.record_format(f["path"]) is None:
            continue
        try:
            summary = dataset_rows.summarize(store.path(f["blake3"]), f["path"])
        except InvalidInput as exc:
            f["meta"] = {**f["meta"], "records_error": exc.message}
        else:
            f["meta"] = {**f["meta"], "records": summary}


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


def _croissant_available() -> bool:
    try:
        import mlcroissant  # noqa: F401
    except ImportError:
        return False
    return True


# 4. The rows and the record entry (one transaction) -----------------------------------------


def _check_still_held(store: ObjectStore, plan: _Plan, prepared: _Prepared) -> None:
    """The files read are still this person's to publish (an upload may have expired and been
    collected meanwhile): the same bytes, and still in the store."""
    for f in prepared.files:
        if plan.held.get(f["blake3"]) != (f["size"], f["sha256"]):
            raise _not_held(f["path"], f["blake3"])
        if not store.holds(f["blake3"], f["size"]):
            raise _not_held(f["path"], f["blake3"])


def _write(
    db: Session, actor: Principal, plan: _Plan, prepared: _Prepared, req: VersionCreate
) -> Version:
    repo, files, job = plan.repo, prepared.files, plan.job
    version = Version(
        repo_id=repo.id,
        number=plan.number,
        commit=prepared.commit,
        statement_sha256=prepared.digest,
        envelope=prepared.envelope,
        message=req.message,
        licenses=prepared.licenses,
        license_flags=_license_flags(prepared.licenses, files),
        card={"meta": prepared.card.meta, "body": prepared.card.body} if prepared.card else None,
        croissant=prepared.croissant,
        sources=[source.model_dump(exclude_none=True) for source in req.sources],
        job=job,
        total_bytes=sum(f["size"] for f in files),
        created_by=actor.pseudonym,
    )
    db.add(version)
    db.flush()
    db.add_all(VersionFile(version_id=version.id, **f) for f in files)
    edges = [*plan.sources, *_read_lineage(repo, plan.read, plan.sources)]
    for source, relation in edges:
        db.add(LineageEdge(version_id=version.id, source_id=source.id, relation=relation, job=job))
    # The uploads are this version's files now.
    db.execute(
        delete(Upload).where(
            Upload.repo_id == repo.id,
            Upload.state == UploadState.COMPLETE,
            Upload.person_id == actor.person_id,
            Upload.blake3.in_({f["blake3"] for f in files}),
        )
    )
    _record_publication(db, actor, plan, prepared, version, edges)
    if req.tag:
        tag_version(db, actor, repo, req.tag, version, move=False)
    return version


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


def _license_flags(licenses: list[str], files: list[dict[str, Any]]) -> list[str]:
    """The version's declared licences and its records' own, checked together: a record under
    a licence that cannot be combined with the rest is as much a problem as a declared one."""
    from_records = sorted(set(record_licenses(files)) - set(licenses))
    flags = metadata.license_flags([*licenses, *from_records])
    return [
        f"{flag} (stated by records)" if any(x in flag for x in from_records) else flag
        for flag in flags
    ]


def _record_publication(
    db: Session,
    actor: Principal,
    plan: _Plan,
    prepared: _Prepared,
    version: Version,
    edges: list[tuple[Version, Relation]],
) -> None:
    repo = plan.repo
    event = (
        ArtifactsEvent.DatasetPublished
        if repo.kind == RepoKind.DATASET
        else ArtifactsEvent.ModelPublished
    )
    signature = prepared.envelope["signatures"][0]
    public = {
        "commit": prepared.commit,
        "statement_sha256": prepared.digest,
        "signature": signature["sig"],
        "key": signature["keyid"],
        "files": len(prepared.files),
        "bytes": version.total_bytes,
        "level": Level(repo.level).label,
    }
    clear, committed = _publication_details(repo, prepared.licenses, plan.job, edges)
    record.append(
        db,
        event,
        actor=actor,
        subject=subject_of(repo, plan.number),
        data={**public, **clear},
        private=committed,
    )


def _publication_details(
    repo: Repo, licenses: list[str], job: str | None, edges: list[tuple[Version, Relation]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new version's licences, lineage (named and read) and job as its entry says them:
    (in clear, committed).

    A non-public version commits to all of it. A public one names its public sources and
    commits to the others (`lineage_private`): the record cannot be redacted, so the name of
    a source that is not public never enters it in clear."""
    lineage = [f"{relation}:{ref_of(source)}" for source, relation in edges]
    details = {"licenses": licenses, "lineage": lineage, "job": job}
    if not is_public(repo):
        return {}, details
    shown: list[str] = []
    withheld: list[str] = []
    for ref, (source, _) in zip(lineage, edges, strict=True):
        (shown if is_public(source.repo) else withheld).append(ref)
    return {**details, "lineage": shown}, ({"lineage_private": withheld} if withheld else {})
