"""The identity book, in the part the other books need: institutions (their names and
countries are public, so anyone may say which institution an allocation's hours count toward)
and which institution each person belongs to (a schema-1 award names no institution: its PI's
is the fallback). Compared with the facility's public list of institutions.

People's names and contacts are commitments on the record; only their pseudonyms and
institutions are replayed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads

__all__ = ["IdentityBook", "Institution"]


@dataclass
class Institution:
    id: int
    name: str
    country: str
    kind: str


class IdentityBook(Book):
    name = "identity"

    def __init__(self) -> None:
        self.institutions: dict[int, Institution] = {}
        # pseudonym → institution id (None: none on record)
        self.institution_of: dict[str, int | None] = {}

    @reads("identity:institution:created")
    def institution_created(self, entry: Entry) -> None:
        """An institution's name, country and kind, under its id (the subject)."""
        data = entry.data
        institution_id = int(entry.subject_id)
        self.institutions[institution_id] = Institution(
            institution_id, data["name"], data["country"], data["kind"]
        )

    @reads("identity:institution:updated")
    def institution_updated(self, entry: Entry) -> None:
        """A renamed institution, or one whose country or kind changed: what it is now."""
        institution = self.institutions.get(int(entry.subject_id))
        if institution is None:
            return  # compared below: the facility shows one the record never created
        for field in ("name", "country", "kind"):
            if field in entry.data["changes"]:
                setattr(institution, field, entry.data["changes"][field])

    @reads("identity:person:created")
    def person_created(self, entry: Entry) -> None:
        """Which institution a person (by pseudonym) belongs to on arrival."""
        self.institution_of[entry.subject_id] = entry.data.get("institution")

    @reads("identity:person:updated")
    def person_updated(self, entry: Entry) -> None:
        """A person's move to another institution."""
        changes = entry.data.get("changes", {})
        if "institution_id" in changes:
            self.institution_of[entry.subject_id] = changes["institution_id"]

    def compare(self, published: Published, findings: Findings) -> None:
        shown = {item["id"]: item for item in published.pages("/api/v1/institutions")}
        findings.compare(self.name, "institutions (ids)", sorted(self.institutions), sorted(shown))
        for institution_id, institution in sorted(self.institutions.items()):
            item = shown.get(institution_id)
            if item is None:
                continue
            for field in ("name", "country", "kind"):
                findings.compare(
                    self.name,
                    f"institution/{institution_id} {field}",
                    getattr(institution, field),
                    item[field],
                )
