"""Artifacts input and output shapes. Inputs forbid unknown fields and say what is wrong."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
)

from commonlab.artifacts.models import Relation, RepoKind, Visibility
from commonlab.artifacts.refs import RepoRef, VersionRef
from commonlab.bounded import StrictInt64
from commonlab.schemas import Input

__all__ = [
    "DataSource",
    "FileEntry",
    "FileOut",
    "Kinds",
    "LineageRef",
    "MemberOut",
    "NamePath",
    "NamespacePath",
    "Provenance",
    "RecordFileOut",
    "RecordFilesOut",
    "RecordOut",
    "RecordPageOut",
    "RecordSummary",
    "RepoCreate",
    "RepoOut",
    "RepoPath",
    "RevPath",
    "TagOut",
    "TagUpdate",
    "UploadCreate",
    "UploadOut",
    "VersionCreate",
    "VersionOut",
    "VersionPath",
    "VersionSummaryOut",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
TAG_PATTERN = r"^[A-Za-z][A-Za-z0-9._-]{0,63}$"
HEX64 = r"^[0-9a-f]{64}$"


def _no_dots(name: str) -> str:
    if ".." in name or name.endswith("."):
        raise ValueError("must not contain '..' or end with '.'")
    return name


RepoName = Annotated[str, StringConstraints(pattern=NAME_PATTERN), AfterValidator(_no_dots)]
Namespace = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"), AfterValidator(_no_dots)
]
TagName = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Hex64 = Annotated[str, StringConstraints(pattern=HEX64)]
Text = Annotated[str, StringConstraints(max_length=10_000)]


# How URLs name a repository and a version, `/{kinds}/{namespace}/{name}[/versions/{rev}]`:
# parsed once into a RepoRef / VersionRef by these dependencies, for the API's routes and the
# portal's pages alike.


class Kinds(StrEnum):
    models = "models"
    datasets = "datasets"

    @property
    def kind(self) -> RepoKind:
        return RepoKind.MODEL if self is Kinds.models else RepoKind.DATASET


NamespacePath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
NamePath = Annotated[str, Path(max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
RevPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def repo_path(kinds: Kinds, namespace: NamespacePath, name: NamePath) -> RepoRef:
    """`/{kinds}/{namespace}/{name}`, parsed once for every route under it."""
    return RepoRef(kinds.kind, namespace, name)


RepoPath = Annotated[RepoRef, Depends(repo_path)]


def version_path(repo: RepoPath, rev: RevPath) -> VersionRef:
    """`/{kinds}/{namespace}/{name}/versions/{rev}`, parsed once for every route under it."""
    return repo.at(rev)


VersionPath = Annotated[VersionRef, Depends(version_path)]


def _compartment(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
        raise ValueError("a compartment is lower-case letters, digits, '-' or '_', e.g. 'bio'")
    return name


class RepoCreate(Input):
    kind: RepoKind
    name: RepoName
    project: Namespace | None = Field(
        default=None, description="the owning project's id; left out, the repository is yours"
    )
    visibility: Visibility = Visibility.PUBLIC
    level: Annotated[StrictInt64, Field(ge=1, le=4, description="containment level 1..4")] = 1
    compartments: list[Annotated[str, AfterValidator(_compartment)]] = Field(
        default_factory=list, max_length=20
    )
    description: Text = ""


class RepoOut(BaseModel):
    id: int
    kind: RepoKind
    namespace: str
    name: str
    repo_id: str
    project: str | None
    owner: str | None
    visibility: Visibility
    level: int
    description: str
    created_at: datetime
    latest: int | None
    tags: dict[str, int]


class UploadCreate(Input):
    """A file to send. Declaring a digest lets the facility skip bytes this repository already
    holds; without one, the bytes are stored under the digests the facility computes from
    them (the fast path for a client that copies the file in on a shared file system), and
    the facility asks for a digest first (409) when the repository holds a file of this size.
    """

    size: Annotated[StrictInt64, Field(ge=0, le=1 << 44, description="the file's size in bytes")]
    sha256: Hex64 | None = Field(default=None, description="checked when the upload finishes")
    blake3: Hex64 | None = Field(
        default=None,
        description="checked when the upload finishes; when the repository already holds it, "
        "nothing needs sending (without it, the SHA-256 and size decide)",
    )


class UploadOut(BaseModel):
    id: str | None
    state: str
    size: int
    received: int
    blake3: str | None
    chunk_bytes: int = Field(description="send the bytes in PUTs of at most this many bytes")
    local_path: str | None = Field(
        default=None,
        description="where the open upload's bytes grow on the facility: a client that shares "
        "its file system and may write there can copy the file in, then PUT an empty chunk at "
        "offset=size to finish (the bytes are checked like any others)",
    )


class FileEntry(Input):
    path: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    blake3: Hex64
    media_type: Annotated[str, StringConstraints(max_length=100)] | None = None


def _declarable(relation: Relation) -> Relation:
    if relation == Relation.READ:
        raise ValueError(
            "'read' is what the facility saw a job read; declare derived_from, trained_on, "
            "evaluates or indexes"
        )
    return relation


class LineageRef(Input):
    ref: Annotated[
        str,
        StringConstraints(
            pattern=r"^(models|datasets)/[A-Za-z0-9_-]{1,64}/[A-Za-z0-9._-]{1,96}@[0-9]{1,9}$"
        ),
    ] = Field(description="e.g. datasets/speech-lab/swahili-asr@3")
    relation: Annotated[Relation, AfterValidator(_declarable)] = Relation.DERIVED_FROM


class DataSource(Input):
    """Where a version's data came from, as its publisher declares it: a name, and where known
    its address and licence. Pages, lineage and PROV show these three and nothing else."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    url: Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://\S+$")] | None = None
    license: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class VersionCreate(Input):
    files: list[FileEntry] = Field(min_length=1, max_length=100_000)
    message: Text = ""
    tag: TagName | None = None
    licenses: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20
    )
    croissant: dict[str, Any] | None = Field(
        default=None, description="declared Croissant fields (name, description, rai:*, ...)"
    )
    sources: list[DataSource] = Field(
        default_factory=list, max_length=1000, description="where the data came from"
    )
    lineage: list[LineageRef] = Field(default_factory=list, max_length=100)
    job: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None


class FileOut(BaseModel):
    path: str
    size: int
    blake3: str
    sha256: str
    media_type: str
    meta: dict[str, Any]


class VersionSummaryOut(BaseModel):
    number: int
    commit: str
    message: str
    created_at: datetime
    total_bytes: int
    files: int


class VersionOut(BaseModel):
    repo: str
    kind: RepoKind
    number: int
    commit: str
    message: str
    created_at: datetime
    created_by: str
    level: int
    licenses: list[str]
    license_flags: list[str]
    job: str | None
    total_bytes: int
    statement_sha256: str
    card: dict[str, Any] | None
    files: list[FileOut]
    tags: list[str]
    withheld: str | None = Field(
        default=None,
        description="why the card and what was read from the files (meta) are not shown: "
        "they go with the files' content, which this caller may not read",
    )


class RecordFileOut(BaseModel):
    path: str
    format: str = Field(description="jsonl, parquet or webdataset")
    size: int
    media_type: str


class RecordFilesOut(BaseModel):
    files: list[RecordFileOut]


class MemberOut(BaseModel):
    name: str = Field(description="a field of a row, or a WebDataset member's extension")
    kind: str = Field(description="text, json, image, audio, video or binary")
    media_type: str
    size: int
    text: str | None = Field(description="the value, for text and JSON members")
    truncated: bool
    url: str = Field(description="the member's bytes, served with its media type")


class Provenance(BaseModel):
    source: str | None
    source_from: str = Field(description="record (its own fields or sidecar), version, none")
    license: str | None
    license_from: str = Field(description="record (its own fields or sidecar), version, none")


class RecordSummary(Provenance):
    index: int
    key: str
    preview: str
    kinds: list[str] = Field(description="the media it holds: image, audio, video")


class RecordPageOut(BaseModel):
    file: str
    format: str
    offset: int
    limit: int
    total: int | None = Field(description="unknown for JSONL until its end has been read")
    has_more: bool
    records: list[RecordSummary]


class RecordOut(Provenance):
    file: str
    format: str
    index: int
    key: str
    members: list[MemberOut]
    has_next: bool = Field(description="whether a record follows this one in the file")


class TagUpdate(Input):
    version: Annotated[StrictInt64, Field(ge=1)]
    move: bool = Field(default=False, description="move the tag if it names another version")


class TagOut(BaseModel):
    name: str
    version: int
    moved: bool
