"""What the artifacts use cases need beyond the database: the object store the bytes live in,
the facility key that signs each version, the URL it is reached at, and the upload chunk
size it tells clients."""

from __future__ import annotations

from dataclasses import dataclass

from commonlab.artifacts.store import ObjectStore
from commonlab.record.note import Signer

__all__ = ["Registry"]


@dataclass(frozen=True)
class Registry:
    """The object store and the facility key, shared by every use case of one app."""

    store: ObjectStore
    signer: Signer
    base_url: str
    chunk_bytes: int
