"""Repositories: creating one, finding one, listing them, and the one decision whether a
principal may know a repository exists (`readable`), which every other use case opens a
repository through. Also what a job reads, noted the first time it reads it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from commonlab import record
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import JobRead, Repo, RepoKind, Tag, Version, Visibility
from commonlab.artifacts.refs import RepoRef
from commonlab.artifacts.schemas import RepoCreate
from commonlab.db import utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound
from commonlab.policy import Action, Resource, authorize, decide
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal, Role

__all__ = [
    "authorize_read",
    "authorize_write",
    "content_denial",
    "context_of",
    "create_repo",
    "find_repo",
    "get_repo",
    "is_public",
    "list_repos",
    "note_job_read",
    "readable",
    "resource_of",
    "subject_of",
]


def resource_of(repo: Repo) -> Resource:
    return Resource(
        "artifact",
        f"{repo.kind}/{repo.namespace}/{repo.name}",
        level=Level(repo.level),
        compartments=frozenset(repo.compartments),
        project=repo.project,
        owner=repo.owner_id,
    )


def context_of(repo: Repo) -> dict[str, object]:
    return {"visibility": repo.visibility}


def is_public(repo: Repo) -> bool:
    return repo.visibility == Visibility.PUBLIC and repo.level == Level.CL1


def subject_of(repo: Repo, number: int | None = None) -> str:
    # Non-public repositories appear on the record by id; their names enter as commitments.
    base = f"{repo.kind}s/{repo.repo_id}" if is_public(repo) else f"artifact/{repo.id}"
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
        authorize(actor, Action.ArtifactsRepoCreate, resource_of(repo), context_of(repo))
        authorize(actor, Action.ResourceWrite, resource_of(repo), {"data_level": req.level})
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
            subject=subject_of(repo),
            data={**public, **(names if is_public(repo) else {})},
            private=None if is_public(repo) else names,
        )
    return repo


def _check_may_know_every_name(
    db: Session, actor: Principal, kind: RepoKind | str, namespace: str
) -> None:
    """A name taken in a namespace is taken for everyone who creates there, so a refused name
    would tell one who may not read a repository that it exists. One creates only in a
    namespace whose repositories of that kind one may all read (`readable`): asked before
    any name is looked at, so the answer is the same whatever name is tried, and a name
    clash (409) is only ever with a repository the creator may read."""
    if actor.is_system:
        return
    held = db.scalars(
        select(Repo).where(Repo.kind == kind, func.lower(Repo.namespace) == namespace.lower())
    )
    if all(readable(actor, repo) for repo in held):
        return
    raise AccessDenied(
        f"you may not create {kind} repositories in {namespace}: it holds {kind}s you may not "
        "read, and the name you chose could be one of theirs; ask someone who may read them "
        "all to create it (a job's token reads only up to its job's level)"
    )


def _no_such_repo(kind: RepoKind | str, namespace: str, name: str) -> NotFound:
    return NotFound(f"no {kind} repository {namespace}/{name}")


def find_repo(db: Session, ref: RepoRef) -> Repo:
    """The repository `ref` names, whoever asks (the caller authorizes); NotFound if none."""
    repo = db.scalar(
        select(Repo).where(
            Repo.kind == ref.kind, Repo.namespace == ref.namespace, Repo.name == ref.name
        )
    )
    if repo is None:
        raise _no_such_repo(ref.kind, ref.namespace, ref.name)
    return repo


def readable(actor: Principal, repo: Repo) -> bool:
    """The one decision whether `actor` may know `repo` exists: open it, find it in a list, a
    search or a count, read its metadata. The visibility permit and the containment lattice
    (clearance, compartments, project, a job's level) must both allow it."""
    return (
        decide(actor, Action.ArtifactsRead, resource_of(repo), context_of(repo)).allowed
        and decide(actor, Action.ResourceRead, resource_of(repo)).allowed
    )


def content_denial(actor: Principal, repo: Repo) -> str | None:
    """Why `actor` may not read what is inside the files (a download's decision), or None:
    what was read out of them at publish (a card, records' sources, a Croissant schema)
    goes with them."""
    decision = decide(actor, Action.ArtifactsDownload, resource_of(repo), context_of(repo))
    return None if decision.allowed else decision.reason


def authorize_read(actor: Principal, repo: Repo) -> None:
    # Whether a repository exists is not for those who may not read it: they get the answer
    # a missing one gets, word for word (a 403 would confirm it exists).
    if not readable(actor, repo):
        raise _no_such_repo(repo.kind, repo.namespace, repo.name)


def authorize_write(actor: Principal, repo: Repo, *, data_level: int | None = None) -> None:
    authorize_read(actor, repo)
    authorize(actor, Action.ArtifactsWrite, resource_of(repo), context_of(repo))
    level = max(repo.level, data_level or 0)
    authorize(actor, Action.ResourceWrite, resource_of(repo), {"data_level": level})


def get_repo(db: Session, actor: Principal, ref: RepoRef) -> Repo:
    with db.begin():
        repo = find_repo(db, ref)
        authorize_read(actor, repo)
        note_job_read(db, actor, repo)
        _ = repo.newest, [tag.version for tag in repo.tags]
    return repo


def list_repos(
    db: Session,
    actor: Principal,
    *,
    kind: RepoKind | None = None,
    q: str | None = None,
    namespace: str | None = None,
    after: int | None = None,
    limit: int = 50,
    newest_first: bool = False,
) -> tuple[list[Repo], int | None]:
    """One page of the repositories `actor` may read (of one namespace, when given), and the
    id to continue after (None at the end). Each is kept by the decision that opening it
    takes (`readable`), so a list, a search or a count never names what a read would
    refuse; the query only narrows the candidates cheaply."""
    query = _candidates(actor, kind=kind, q=q)
    if namespace is not None:
        query = query.where(func.lower(Repo.namespace) == namespace.lower())
    order = Repo.id.desc() if newest_first else Repo.id
    found: list[Repo] = []
    with db.begin():
        while len(found) <= limit:
            batch = query
            if after is not None:
                batch = batch.where(Repo.id < after if newest_first else Repo.id > after)
            rows = db.scalars(
                batch.options(*_LISTED).order_by(order).limit(max(limit + 1, 100))
            ).all()
            found.extend(repo for repo in rows if readable(actor, repo))
            if len(rows) < max(limit + 1, 100):
                break
            after = rows[-1].id
        page = found[:limit]
    return page, page[-1].id if len(found) > limit else None


# What a listed repository shows, loaded for a whole batch at once: its newest version, its
# tags and the version each names (never its history).
_LISTED = (selectinload(Repo.newest), selectinload(Repo.tags).selectinload(Tag.version))


def _candidates(actor: Principal, *, kind: RepoKind | None, q: str | None) -> Any:
    """A superset of what `actor` may read (never a subset: `readable` decides)."""
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


# What jobs read -----------------------------------------------------------------------------


def note_job_read(
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
