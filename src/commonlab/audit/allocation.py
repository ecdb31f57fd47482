"""The allocation book: what the record says of allocation, replayed, and compared with what the
facility publishes. (Being written: see issue 17.)"""

from __future__ import annotations

from commonlab.audit.findings import Findings
from commonlab.audit.governance import GovernanceBook
from commonlab.audit.published import Published
from commonlab.audit.replay import Book

__all__ = ["AllocationBook"]


class AllocationBook(Book):
    name = "allocation"

    def __init__(self, governance: GovernanceBook) -> None:
        self.governance = governance

    def compare(self, published: Published, findings: Findings) -> None:
        pass
