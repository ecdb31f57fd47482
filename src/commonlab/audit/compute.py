"""The compute book: what the record says of compute, replayed, and compared with what the
facility publishes. (Being written: see issue 17.)"""

from __future__ import annotations

from commonlab.audit.findings import Findings
from commonlab.audit.published import Published
from commonlab.audit.replay import Book

__all__ = ["ComputeBook"]


class ComputeBook(Book):
    name = "compute"

    def compare(self, published: Published, findings: Findings) -> None:
        pass
