"""What an audit found: every difference between the record and the facility, one line each,
the figures it checked, and the figures that rest on commitments it cannot open."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Difference", "Findings"]


@dataclass(frozen=True)
class Difference:
    book: str  # which part of the facility: governance, allocation, artifacts, compute
    claim: str  # what was compared, e.g. "motion/3 outcome" or "share IT 2026-Q4 delivered_hours"
    replayed: Any  # what the record implies
    published: Any  # what the facility says

    def line(self) -> str:
        said = f"the record says {self.replayed!r}, the facility {self.published!r}"
        return f"{self.book}: {self.claim}: {said}"


@dataclass
class Findings:
    differences: list[Difference] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # figures compared, per book
    on_commitments: list[str] = field(default_factory=list)  # what the audit cannot open
    notes: list[str] = field(default_factory=list)  # how the audit read older entries

    def compare(self, book: str, claim: str, replayed: Any, published: Any) -> bool:
        """Count one figure; record a difference when the two disagree. True when they agree."""
        self.checked[book] = self.checked.get(book, 0) + 1
        if replayed == published:
            return True
        self.differences.append(Difference(book, claim, replayed, published))
        return False

    def rests_on_commitments(self, what: str) -> None:
        if what not in self.on_commitments:
            self.on_commitments.append(what)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def ok(self) -> bool:
        return not self.differences
