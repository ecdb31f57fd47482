"""What the portal pages read, shaped for templates: the record's head and entries (through
record.service) and the facility's public counts (through each domain's service).

Read-only and public. Each function is one consistent read; views call one of them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from commonlab.allocation import service as allocation
from commonlab.compute import service as compute
from commonlab.db import utcnow
from commonlab.errors import NotFound
from commonlab.governance import service as governance
from commonlab.governance.schemas import MemberOut
from commonlab.identity import service as identity
from commonlab.identity.schemas import InstitutionKind
from commonlab.policy.principal import PUBLIC
from commonlab.record import service as record

if TYPE_CHECKING:
    from commonlab.record.models import Entry
    from commonlab.record.store import ProofReader

__all__ = [
    "EntryDetail",
    "EntryPage",
    "EntryRow",
    "Facts",
    "RecordHead",
    "RecordOverview",
    "entries_per_day",
    "entry_bytes",
    "entry_detail",
    "facility_facts",
    "known_types",
    "record_head",
    "record_overview",
    "record_page",
]

KIND_LABELS = {
    InstitutionKind.UNIVERSITY: "Universities",
    InstitutionKind.RESEARCH_LAB: "Research labs",
    InstitutionKind.SME: "SMEs",
    InstitutionKind.GOVERNMENT: "Public bodies",
    InstitutionKind.NGO: "NGOs",
}


@dataclass(frozen=True)
class RecordHead:
    """The latest signed checkpoint, as a person reads it."""

    origin: str
    size: int
    root_b64: str
    root_hex: str
    signed_at: datetime | None
    note: str


@dataclass(frozen=True)
class EntryRow:
    index: int
    type: str
    subject: str
    time: datetime
    actor: str
    actor_role: str | None


@dataclass(frozen=True)
class EntryPage:
    rows: list[EntryRow]
    # `before` cursor for the next (older) page; None at the oldest entry.
    older: int | None


@dataclass(frozen=True)
class EntryDetail:
    row: EntryRow
    body: str
    readable: str
    leaf_hash: str
    size: int | None
    root_b64: str | None
    root_hex: str | None
    proof: list[str]
    proof_note: str | None
    has_next: bool


@dataclass(frozen=True)
class Facts:
    """The facility at a glance: what exists today, and the record that proves it."""

    institutions: int
    institutions_by_kind: list[tuple[str, int]]
    countries: int
    people: int
    head: RecordHead | None
    recent: list[EntryRow]
    members: list[MemberOut]
    fleet: dict[str, Any]  # compute's public fleet overview: partitions, accelerators, use
    projects: int  # active awarded projects (at most PROJECTS_COUNTED)


# The home page counts projects up to this many ("200+" beyond): a glance, not a census.
PROJECTS_COUNTED = 200


@dataclass(frozen=True)
class RecordOverview:
    """The record page: its head, a page of entries, activity per day, the known types."""

    head: RecordHead | None
    page: EntryPage
    per_day: list[tuple[date, int]]
    types: list[str]


def record_overview(
    db: Session,
    *,
    type_prefix: str | None = None,
    subject: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> RecordOverview:
    return RecordOverview(
        head=record_head(db),
        page=record_page(db, type_prefix=type_prefix, subject=subject, before=before, limit=limit),
        per_day=entries_per_day(db),
        types=known_types(db),
    )


def record_head(db: Session) -> RecordHead | None:
    """The latest checkpoint with its cosignatures, or None before the first is signed."""
    try:
        note = record.checkpoint_with_cosignatures(db).decode()
    except NotFound:
        return None
    origin, size_line, root_line = note.split("\n")[:3]
    size = int(size_line)
    return RecordHead(
        origin=origin,
        size=size,
        root_b64=root_line,
        root_hex=base64.b64decode(root_line).hex(),
        signed_at=record.checkpoint_signed_at(db, size),
        note=note,
    )


def facility_facts(db: Session, *, recent: int = 5) -> Facts:
    counts = identity.summary(db)
    by_kind = counts["institutions_by_kind"]
    kinds = [(KIND_LABELS[kind], int(by_kind.get(kind.value, 0))) for kind in InstitutionKind]
    return Facts(
        institutions=int(counts["institutions"]),
        institutions_by_kind=kinds,
        countries=int(counts["countries"]),
        people=int(counts["people"]),
        head=record_head(db),
        recent=record_page(db, limit=recent).rows,
        members=governance.member_views(db, PUBLIC),
        fleet=compute.fleet_overview(db, PUBLIC),
        projects=len(allocation.awarded_projects(db, PUBLIC, limit=PROJECTS_COUNTED)),
    )


def record_page(
    db: Session,
    *,
    type_prefix: str | None = None,
    subject: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> EntryPage:
    """Sequenced entries, newest first, older than `before` when given."""
    rows = record.newest_entries(
        db, type_prefix=type_prefix, subject=subject, before=before, limit=limit + 1
    )
    page = [_row(entry) for entry in rows[:limit]]
    older = page[-1].index if len(rows) > limit and page else None
    return EntryPage(rows=page, older=older)


def known_types(db: Session) -> list[str]:
    """Every entry type seen, with its prefixes (`identity`, `identity:token`), for filters."""
    options: set[str] = set()
    for kind in record.entry_types(db):
        parts = kind.split(":")
        options.update(":".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(options)


def entries_per_day(
    db: Session, *, days: int = 30, now: datetime | None = None
) -> list[tuple[date, int]]:
    """Sequenced entries per UTC day over the last `days` days, oldest first, zeros included."""
    today = (now or utcnow()).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    by_day = record.entries_per_day(db, since=since)
    return [
        (first + timedelta(days=i), by_day.get(str(first + timedelta(days=i)), 0))
        for i in range(days)
    ]


def entry_bytes(db: Session, index: int) -> bytes:
    """The entry's exact bytes, as hashed into the tree."""
    return record.entry_at(db, index).body


def entry_detail(db: Session, proofs: ProofReader, index: int) -> EntryDetail:
    """One entry, its leaf hash, and its inclusion proof against the latest checkpoint."""
    entry = record.entry_at(db, index)
    head = record_head(db)
    proof: list[str] = []
    proof_note = None
    root_b64 = root_hex = None
    size = None
    if head is None:
        proof_note = "no checkpoint is signed yet, so there is nothing to prove inclusion in"
    else:
        included = record.inclusion(db, proofs, index=index, leaf_hash_hex=None, size=head.size)
        proof = [h.hex() for h in included.proof]
        size = included.size
        root_b64 = base64.b64encode(included.root_hash).decode()
        root_hex = included.root_hash.hex()
    body = entry.body.decode()
    return EntryDetail(
        row=_row(entry),
        body=body,
        readable=json.dumps(json.loads(body), indent=2, ensure_ascii=False),
        leaf_hash=entry.leaf_hash.hex(),
        size=size,
        root_b64=root_b64,
        root_hex=root_hex,
        proof=proof,
        proof_note=proof_note,
        has_next=size is not None and index + 1 < size,
    )


def _row(entry: Entry) -> EntryRow:
    assert entry.seq is not None
    actor: dict[str, Any] = {}
    try:
        body = json.loads(entry.body)
        actor = body.get("actor") or {}
    except ValueError:  # pragma: no cover - bodies are canonical JSON by construction
        pass
    name = actor.get("name") or actor.get("id") or "?"
    return EntryRow(
        index=entry.seq,
        type=entry.type,
        subject=entry.subject,
        time=entry.time,
        actor=str(name),
        actor_role=actor.get("role"),
    )
