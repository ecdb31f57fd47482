"""Resumable uploads: open one (or none, when the repository already holds the bytes), append
chunks at an offset, and turn the finished bytes into a stored object once both digests are
checked. An upload belongs to the person who opened it; a version takes it when published."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.artifacts.models import Repo, Upload, UploadState, Version, VersionFile
from commonlab.artifacts.refs import RepoRef
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.repos import authorize_write, find_repo
from commonlab.artifacts.schemas import UploadCreate
from commonlab.artifacts.store import UploadOffsetMismatch
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.policy.principal import Principal

__all__ = ["UPLOAD_LIFETIME", "UploadStatus", "put_chunk", "start_upload", "upload_status"]

UPLOAD_LIFETIME = timedelta(days=1)


@dataclass(frozen=True)
class UploadStatus:
    id: str | None
    state: str
    size: int
    received: int
    blake3: str | None
    local_path: str | None = None


def start_upload(
    db: Session, actor: Principal, registry: Registry, ref: RepoRef, req: UploadCreate
) -> UploadStatus:
    """Open a resumable upload, or none when this repository already holds the bytes."""
    with db.begin():
        repo = find_repo(db, ref)
        authorize_write(actor, repo)
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
    # The part file is made once its row is committed, so the collector can tell a part file
    # with no row (left by a crash) from one whose upload is still being opened.
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
        authorize_write(actor, repo)
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
