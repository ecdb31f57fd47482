"""Garbage collection of the object store: expired uploads are forgotten, and objects that no
version and no finished upload names are removed. Files are deleted only after the
transaction that forgets them commits, so a row never names a missing file; a crash in
between leaves files nothing names, which the next collection removes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.artifacts.events import ArtifactsEvent
from commonlab.artifacts.models import Upload, UploadState, VersionFile
from commonlab.artifacts.registry import Registry
from commonlab.artifacts.store import ObjectStore
from commonlab.db import utcnow
from commonlab.errors import Conflict
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal, Role

__all__ = ["collect_garbage"]


@dataclass(frozen=True)
class _Forgotten:
    """What a committed collection no longer names: the files to delete now."""

    part_files: set[str]  # upload ids with a part file and no row
    objects: dict[str, int]  # BLAKE3 → size in bytes
    expired_uploads: int


def collect_garbage(db: Session, actor: Principal, registry: Registry) -> dict[str, int]:
    """Remove objects no version references; refused while any upload is open."""
    authorize(actor, Action.ArtifactsCollect, Resource("artifact", "*"))
    store = registry.store
    # Held throughout: no object is placed, and no version naming one is written, between
    # deciding what nothing names and deleting it.
    with store.exclusive():
        # Listed before the transaction: a part file is made only once its upload's row is
        # committed, so every one listed here either has its row in what the transaction
        # reads or has none left (a crash, or an expired upload forgotten below).
        part_files = set(store.open_part_files())
        with db.begin():
            forgotten = _forget(db, actor, store, part_files)
        # Committed: nothing names these files any more. A crash here leaves them for the
        # next collection, never a row that names a missing file.
        for upload_id in forgotten.part_files:
            store.discard_upload(upload_id)
        for b3 in forgotten.objects:
            store.remove(b3)
    return _summary(forgotten)


def _forget(db: Session, actor: Principal, store: ObjectStore, part_files: set[str]) -> _Forgotten:
    """Delete expired uploads' rows, decide which files nothing names, and record it."""
    expired = db.scalars(select(Upload.id).where(Upload.expires_at <= utcnow())).all()
    if expired:
        db.execute(delete(Upload).where(Upload.id.in_(expired)))
    open_count = db.scalar(
        select(func.count()).where(Upload.state == UploadState.OPEN)
    ) or 0  # fmt: skip
    kept = set(db.scalars(select(Upload.id)))
    if open_count or part_files & kept:
        raise Conflict(
            f"{open_count or 'some'} upload(s) are open: collect when they finish or expire"
        )
    referenced = set(db.scalars(select(VersionFile.blake3).distinct()))
    referenced |= set(db.scalars(select(Upload.blake3).where(Upload.blake3.is_not(None))))
    objects = {b3: store.size_of(b3) for b3 in store.all_objects() if b3 not in referenced}
    forgotten = _Forgotten(part_files - kept, objects, len(expired))
    record.append(
        db,
        ArtifactsEvent.GarbageCollected,
        actor=actor,
        as_role=Role.OPERATOR,
        subject="artifacts/store",
        data=_summary(forgotten),
    )
    return forgotten


def _summary(forgotten: _Forgotten) -> dict[str, int]:
    return {
        "removed": len(forgotten.objects),
        "bytes": sum(forgotten.objects.values()),
        "expired_uploads": forgotten.expired_uploads,
    }
