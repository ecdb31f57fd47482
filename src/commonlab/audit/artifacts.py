"""The artifacts book: what the record says of artifacts, replayed, and compared with what the
facility publishes. (Being written: see issue 17.)"""

from __future__ import annotations

from commonlab.audit.findings import Findings
from commonlab.audit.published import Published
from commonlab.audit.replay import Book

__all__ = ["ArtifactsBook"]


class ArtifactsBook(Book):
    name = "artifacts"

    def compare(self, published: Published, findings: Findings) -> None:
        pass
