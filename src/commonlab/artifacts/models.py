"""Artifact tables: repositories, their immutable versions and files, tags, resumable
uploads, the lineage edges between versions and the jobs that made them, and what each
facility job read."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = [
    "JobRead",
    "LineageEdge",
    "Relation",
    "Repo",
    "RepoKind",
    "Tag",
    "Upload",
    "UploadState",
    "Version",
    "VersionFile",
    "Visibility",
]


class RepoKind(StrEnum):
    DATASET = "dataset"
    MODEL = "model"


class Visibility(StrEnum):
    PUBLIC = "public"
    PROJECT = "project"
    PRIVATE = "private"


class UploadState(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"


class Relation(StrEnum):
    """How a version came from another: derived from it, trained on it, evaluated it, or
    indexes it (a training-data search index built from a dataset version)."""

    DERIVED_FROM = "derived_from"
    TRAINED_ON = "trained_on"
    EVALUATES = "evaluates"
    INDEXES = "indexes"
    # Not declared: the facility saw the job that made the version read it.
    READ = "read"


class Repo(Base):
    __tablename__ = "artifacts_repos"
    __table_args__ = (UniqueConstraint("kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    namespace: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(96))
    # Owned by a project (its id) or, when project is null, by a person.
    project: Mapped[str | None] = mapped_column(String(64), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("identity_people.id"), index=True)
    visibility: Mapped[str] = mapped_column(String(10))
    level: Mapped[int] = mapped_column(Integer)
    compartments: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[Version]] = relationship(back_populates="repo", order_by="Version.number")
    # The newest version alone, for lists and summaries: reading `versions[-1]` loaded a
    # repository's whole history (manifests, cards) to show one number.
    newest: Mapped[Version | None] = relationship(
        primaryjoin=lambda: _newest_version_of_repo(), viewonly=True, uselist=False
    )
    tags: Mapped[list[Tag]] = relationship(back_populates="repo", order_by="Tag.name")

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


class Version(Base):
    """An immutable manifest: what files, with which hashes, signed when published."""

    __tablename__ = "artifacts_versions"
    __table_args__ = (UniqueConstraint("repo_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("artifacts_repos.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # Hub clients expect a 40-hex commit id; it is the head of the statement's SHA-256.
    commit: Mapped[str] = mapped_column(String(40), index=True)
    statement_sha256: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    licenses: Mapped[list[str]] = mapped_column(JSON)
    license_flags: Mapped[list[str]] = mapped_column(JSON)
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    croissant: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    job: Mapped[str | None] = mapped_column(String(64), index=True)
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    repo: Mapped[Repo] = relationship(back_populates="versions")
    files: Mapped[list[VersionFile]] = relationship(
        back_populates="version", order_by="VersionFile.path"
    )


class VersionFile(Base):
    __tablename__ = "artifacts_files"
    __table_args__ = (UniqueConstraint("version_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("artifacts_versions.id"), index=True)
    path: Mapped[str] = mapped_column(String(1024))
    # Indexed: an upload without a digest asks whether the repository holds this size.
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    blake3: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    # What the registry read from the file: a safetensors header's metadata, record counts.
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)

    version: Mapped[Version] = relationship(back_populates="files")


class Tag(Base):
    __tablename__ = "artifacts_tags"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("artifacts_repos.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("artifacts_versions.id"))
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    repo: Mapped[Repo] = relationship(back_populates="tags")
    version: Mapped[Version] = relationship()


class Upload(Base):
    """A resumable upload of one file; its bytes grow on disk, its object appears when done."""

    __tablename__ = "artifacts_uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("artifacts_repos.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("identity_people.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10), index=True)
    blake3: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LineageEdge(Base):
    """`version` was derived from / trained on / evaluates `source` (by `job`, when known)."""

    __tablename__ = "artifacts_lineage"
    __table_args__ = (UniqueConstraint("version_id", "source_id", "relation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("artifacts_versions.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("artifacts_versions.id"), index=True)
    relation: Mapped[str] = mapped_column(String(20))
    job: Mapped[str | None] = mapped_column(String(64))

    version: Mapped[Version] = relationship(foreign_keys=[version_id])
    source: Mapped[Version] = relationship(foreign_keys=[source_id])


class JobRead(Base):
    """A facility job read this repository (and this version of it, when one was read): the
    first time it did. Whatever the job publishes is at least as contained as all it read,
    and names the versions in its lineage."""

    __tablename__ = "artifacts_job_reads"
    __table_args__ = (
        UniqueConstraint("job_id", "repo_id", "version_id"),
        # A unique constraint counts every NULL as distinct: one read of the repository alone
        # per job is the database's rule too (a partial index, on SQLite and PostgreSQL).
        Index(
            "uq_artifacts_job_reads_job_id_repo_id_repository",
            "job_id",
            "repo_id",
            unique=True,
            sqlite_where=text("version_id IS NULL"),
            postgresql_where=text("version_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), index=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("artifacts_repos.id"))
    # Null where only the repository's own metadata was read (its description, its list).
    version_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts_versions.id"))
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    repo: Mapped[Repo] = relationship()
    version: Mapped[Version | None] = relationship()


def _newest_version_of_repo() -> ColumnElement[bool]:
    """`Repo.newest`'s join: the repository's version with the highest number."""
    other = aliased(Version)
    highest = (
        select(func.max(other.number))
        .where(other.repo_id == Version.repo_id)
        .correlate(Version)
        .scalar_subquery()
    )
    return and_(Version.repo_id == Repo.id, Version.number == highest)
