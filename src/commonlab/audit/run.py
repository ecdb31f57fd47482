"""One audit: read and verify the log, replay it into every Book, compare with the facility."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from commonlab.audit.allocation import AllocationBook
from commonlab.audit.artifacts import ArtifactsBook
from commonlab.audit.compute import ComputeBook
from commonlab.audit.datasearch import DatasearchBook
from commonlab.audit.findings import Findings
from commonlab.audit.governance import GovernanceBook
from commonlab.audit.identity import IdentityBook
from commonlab.audit.log import Progress, VerifiedLog, quiet
from commonlab.audit.published import Published, PublishedError
from commonlab.audit.replay import Book, Replay
from commonlab.audit.workloads import WorkloadsBook

__all__ = ["AuditReport", "audit", "books"]

REPLAY_STEP = 10_000  # entries replayed between two reports of progress


def books(log: VerifiedLog | None = None) -> list[Book]:
    """A fresh set of Books, in the order they are compared. Allocation reads governance's
    members, scale and regulation (entitled shares and the tolerance band come from there);
    artifacts, the log's checkpoint (a version must be signed by the key that signed it)."""
    governance = GovernanceBook()
    artifacts = ArtifactsBook(log.note if log else None)
    identity = IdentityBook()  # institutions: the usage report's names, awards' fallback
    allocation = AllocationBook(governance, identity)
    return [
        governance, identity, allocation, artifacts, ComputeBook(), WorkloadsBook(),
        DatasearchBook(),
    ]  # fmt: skip


@dataclass
class AuditReport:
    log: str
    size: int
    replayed: int
    unread: dict[str, int]
    findings: Findings
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.findings.ok

    def as_dict(self) -> dict[str, Any]:
        f = self.findings
        return {
            "log": self.log,
            "size": self.size,
            "replayed": self.replayed,
            "unread": self.unread,
            "checked": f.checked,
            "differences": [
                {"book": d.book, "claim": d.claim, "record": d.replayed, "facility": d.published}
                for d in f.differences
            ],
            "on_commitments": f.on_commitments,
            "notes": f.notes,
            "ok": self.ok,
        }


def audit(
    log: VerifiedLog,
    published: Published,
    *,
    progress: Progress = quiet,
) -> AuditReport:
    """Replay `log` and compare each Book with `published`. A public route that fails is a
    difference of its own (the figure could not be checked), never a crash."""
    replay = Replay(books(log))
    total = len(log.entries)
    for start in range(0, total, REPLAY_STEP):
        replay.feed(log.entries[start : start + REPLAY_STEP])
        progress("replaying the entries", min(start + REPLAY_STEP, total), total)
    findings = Findings()
    for entry, problem in replay.malformed:
        findings.compare(
            "record", f"entry {entry.index} ({entry.type})", "readable as declared", problem
        )
    for done, book in enumerate(replay.books):
        progress("comparing with the facility", done, len(replay.books))
        try:
            book.compare(published, findings)
        except PublishedError as exc:
            findings.compare(book.name, "the facility's public figures", "readable", str(exc))
    progress("comparing with the facility", len(replay.books), len(replay.books))
    return AuditReport(log.where, log.size, replay.replayed, dict(replay.unread), findings)
