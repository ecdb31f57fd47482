"""The record entries the artifacts domain writes, one name per kind of change or access."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ArtifactsEvent"]


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
