"""Tags: a name for one version of a repository, set or moved (a move only when asked, and
recorded). 'main', 'latest' and 'HEAD' always name the newest version and are not tags."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import Repo, Tag, Version
from commonlab.artifacts.refs import RepoRef
from commonlab.artifacts.repos import authorize_write, find_repo, is_public, subject_of
from commonlab.artifacts.schemas import TagUpdate
from commonlab.artifacts.versions import resolve
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput
from commonlab.policy.principal import Principal

__all__ = ["set_tag", "tag_version"]


def set_tag(
    db: Session, actor: Principal, ref: RepoRef, tag: str, req: TagUpdate
) -> tuple[Tag, bool]:
    """Name `req.version` of the repository `tag`; whether an existing tag was moved."""
    with db.begin():
        repo = find_repo(db, ref)
        authorize_write(actor, repo)
        version = resolve(db, repo, str(req.version))
        row, moved = tag_version(db, actor, repo, tag, version, move=req.move)
    return row, moved


def tag_version(
    db: Session, actor: Principal, repo: Repo, name: str, version: Version, *, move: bool
) -> tuple[Tag, bool]:
    """In the caller's transaction (a publish tags the version it makes): the tag row and its
    record entry; refused when the tag names another version and `move` is not set."""
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
        subject=subject_of(repo),
        data={
            "version": version.number,
            "commit": version.commit,
            "from": previous,
            **({"tag": name} if is_public(repo) else {}),
        },
        private=None if is_public(repo) else {"tag": name},
    )
    return tag, previous is not None
