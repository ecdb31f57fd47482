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


_PUBLISHED = Fields(
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
)
_TAG = Fields("tag", "version", "commit", "from")

FIELDS = declare(
    ArtifactsEvent,
    {
        ArtifactsEvent.RepoCreated: Fields("level", "visibility", "repository", "kind"),
        ArtifactsEvent.DatasetPublished: _PUBLISHED,
        ArtifactsEvent.ModelPublished: _PUBLISHED,
        ArtifactsEvent.TagCreated: _TAG,
        ArtifactsEvent.TagMoved: _TAG,
        ArtifactsEvent.Downloaded: Fields("level", private=("path", "sha256")),
        ArtifactsEvent.DownloadRefused: Fields("level", private=("path", "reason")),
        ArtifactsEvent.Read: Fields("level"),
        ArtifactsEvent.GarbageCollected: Fields("removed", "bytes", "expired_uploads"),
    },
)
