"""The record entries the artifacts domain writes, and what each may say in clear.

Only a public CL-1 repository is named on the record; every other one appears as
`artifact/<id>`, its name, licences, lineage, job and tags as commitments. A public version's
lineage names its public sources in clear and commits to the rest (`lineage_private`).
Access above CL-1 is recorded before it is granted (and a refusal at CL-2+ too), with what was
read as a commitment.
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "ArtifactsEvent"]


class ArtifactsEvent(StrEnum):
    RepoCreated = "artifacts:repo:created"
    DatasetPublished = "artifacts:dataset:published"
    ModelPublished = "artifacts:model:published"
    TagCreated = "artifacts:tag:created"
    TagMoved = "artifacts:tag:moved"
    # Access above CL-1 is recorded before it is granted; a refusal at CL-2+ too.
    Downloaded = "artifacts:file:downloaded"
    DownloadRefused = "artifacts:file:download-refused"
    Read = "artifacts:version:read"
    GarbageCollected = "artifacts:store:collected"


def _published(kind: str) -> Fields:
    return Fields(
        "commit",
        "statement_sha256",
        "signature",
        "key",
        "files",
        "bytes",
        "level",
        "licenses",
        "lineage",
        "job",
        private=("lineage_private",),
        about=f"a {kind} version is published: its commit, the SHA-256 of its signed in-toto "
        "statement, the DSSE signature and the key that made it, its size and level; a "
        "public one's licences and lineage in clear",
    )


def _tag(what: str) -> Fields:
    return Fields("tag", "version", "commit", "from", about=what)


FIELDS = declare(
    ArtifactsEvent,
    {
        ArtifactsEvent.RepoCreated: Fields(
            "level",
            "visibility",
            "repository",
            "kind",
            about="a repository is created at a level and visibility (named only if public)",
        ),
        ArtifactsEvent.DatasetPublished: _published("dataset"),
        ArtifactsEvent.ModelPublished: _published("model"),
        ArtifactsEvent.TagCreated: _tag("a tag names a version of a repository"),
        ArtifactsEvent.TagMoved: _tag("a tag is moved to another version (`from`: the one before)"),
        ArtifactsEvent.Downloaded: Fields(
            "level",
            private=("path", "sha256", "paths", "files"),
            about="a file above CL-1 is downloaded, or a version's files read at once by a "
            "search (recorded before it is served)",
        ),
        ArtifactsEvent.DownloadRefused: Fields(
            "level",
            private=("path", "reason"),
            about="a download of a file at CL-2 or above is refused",
        ),
        ArtifactsEvent.Read: Fields(
            "level", about="a version above CL-1 is read (recorded before it is shown)"
        ),
        ArtifactsEvent.GarbageCollected: Fields(
            "removed",
            "bytes",
            "expired_uploads",
            about="the store removes objects no version references, and expired uploads",
        ),
    },
)
