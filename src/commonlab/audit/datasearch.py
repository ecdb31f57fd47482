"""The datasearch book: every opt-out the record holds, how many records it matched when it
was filed, and what an operator decided on it; compared with the facility's public list of
opt-outs.

What an opt-out names and who filed it are commitments (the audit counts them and cannot
open them); its kind, its count of matched records and its decision with the reason are in
clear, so the list a reader sees must say the same: an opt-out quietly dropped, a count
shrunk after the fact, or a rejection never recorded is a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads
from commonlab.datasearch.events import DatasearchEvent

__all__ = ["DatasearchBook"]


@dataclass
class OptOut:
    kind: str
    records: int
    state: str = "filed"
    reason: str | None = None


class DatasearchBook(Book):
    name = "datasearch"

    def __init__(self) -> None:
        self.optouts: dict[int, OptOut] = {}
        self.problems: list[tuple[str, object, object]] = []

    @reads(DatasearchEvent.OptOutFiled)
    def optout_filed(self, entry: Entry) -> None:
        """Each opt-out: its kind and how many records it matched when filed."""
        self.optouts[int(entry.subject_id)] = OptOut(
            str(entry.data.get("kind")), int(entry.data.get("records") or 0)
        )

    @reads(DatasearchEvent.OptOutDecided)
    def optout_decided(self, entry: Entry) -> None:
        """An operator's decision on an opt-out (upheld or rejected) and its reason; one
        decision each, on an opt-out the record holds."""
        optout = self.optouts.get(int(entry.subject_id))
        if optout is None or optout.state != "filed":
            state = optout.state if optout else None
            self.problems.append((f"{entry.subject} decided", state, "filed"))
            return
        optout.state = str(entry.data.get("decision"))
        optout.reason = entry.data.get("reason")

    def compare(self, published: Published, findings: Findings) -> None:
        for claim, recorded, implied in self.problems:
            findings.compare(self.name, claim, implied, recorded)
        shown = {o["id"]: o for o in published.pages("/api/v1/optouts")}
        findings.compare(self.name, "opt-outs", sorted(self.optouts), sorted(shown))
        for optout_id, recorded in sorted(self.optouts.items()):
            facility = shown.get(optout_id)
            if facility is None:
                continue  # named by the comparison of the list above
            for field in ("kind", "records", "state", "reason"):
                findings.compare(
                    self.name,
                    f"optout/{optout_id} {field}",
                    getattr(recorded, field),
                    facility.get(field),
                )
