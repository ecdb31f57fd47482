"""docs/record.md is generated from the code (`commonlab.audit.schema_docs`): it must match
what the code renders now, and every event type must be declared and every reader documented,
or the document would describe a record that is not the one written."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from types import ModuleType

import pytest

from commonlab.audit import schema_docs
from commonlab.audit.replay import Book, reads
from commonlab.audit.schema_history import PAST_SCHEMAS, PastFields
from commonlab.record.fields import declared_events

DOCS = Path(__file__).resolve().parents[2] / "docs" / "record.md"


def test_docs_record_md_is_what_the_code_renders():
    rendered = schema_docs.render()
    committed = DOCS.read_text() if DOCS.exists() else ""
    if committed != rendered:
        pytest.fail(
            f"docs/record.md is out of date with the code (from line "
            f"{_first_difference(committed, rendered)}): run `{schema_docs.REGENERATE}` from "
            "the repository root, with the venv's python, and commit it",
            pytrace=False,
        )


def _first_difference(old: str, new: str) -> int:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for number, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            return number
    return min(len(old_lines), len(new_lines)) + 1


def test_every_event_type_is_declared_and_every_reader_says_what_it_derives():
    assert schema_docs.problems() == []


def test_every_domain_with_events_is_documented():
    names = {module.__name__ for module in schema_docs.event_modules()}
    for domain in ("identity", "governance", "allocation", "artifacts", "compute", "record"):
        assert f"commonlab.{domain}.events" in names
    text = schema_docs.render()
    for entry_type in schema_docs.domain_events():
        assert f"#### `{entry_type}`" in text


def test_only_the_domains_event_types_are_documented():
    # The record's own tests declare event types of their own in the same process.
    from tests.record.events import SampleEvent

    assert SampleEvent.Entry in declared_events()
    assert "test:entry" not in schema_docs.render()


class _Undeclared(StrEnum):
    Forgotten = "nowhere:thing:forgotten"


class _ReadsATypo(Book):
    name = "typo"

    @reads("governance:motion:tabeled")
    def tabled(self, entry) -> None:
        """The motion's rule."""

    @reads("governance:vote:cast")
    def cast(self, entry) -> None:
        pass

    def compare(self, published, findings) -> None:
        pass


def test_problems_names_an_undeclared_type_a_reader_of_nothing_and_a_silent_reader(monkeypatch):
    stray = ModuleType("commonlab.nowhere.events")
    stray._Undeclared = _Undeclared
    _Undeclared.__module__ = stray.__name__
    modules = [*schema_docs.event_modules(), stray]
    monkeypatch.setattr(schema_docs, "event_modules", lambda: modules)
    monkeypatch.setattr(schema_docs, "books", lambda: [_ReadsATypo()])
    found = schema_docs.problems()
    assert any("_Undeclared.Forgotten" in line and "not declared" in line for line in found)
    assert any("'governance:motion:tabeled', which no events.py declares" in p for p in found)
    assert any("_ReadsATypo.cast has no docstring" in line for line in found)
    assert len(found) == 3


class _ReadsVotes(Book):
    name = "votes"

    @reads("governance:vote:cast")
    def cast(self, entry) -> None:
        """Each member's latest choice on a motion.

        Later paragraphs are for the code's reader, not docs/record.md."""

    def compare(self, published, findings) -> None:
        pass


def test_a_table_shows_fields_about_and_what_the_reading_book_derives(monkeypatch):
    monkeypatch.setattr(schema_docs, "books", lambda: [_ReadsVotes()])
    text = schema_docs.render()
    vote = text.split("#### `governance:vote:cast`")[1].split("####")[0]
    assert "| `choice` | in clear | 1 |" in vote
    derives = "What the audit derives from it (votes): Each member's latest choice on a motion."
    assert derives in vote
    assert "Later paragraphs" not in vote
    about = declared_events()["governance:vote:cast"].about
    assert (about or "—") in vote
    tabled = text.split("#### `governance:motion:tabled`")[1].split("####")[0]
    assert f"What the audit derives from it: {schema_docs.NOT_REPLAYED}." in tabled


def test_the_version_list_is_derived_from_the_declarations(monkeypatch):
    live = {t: PastFields(f.public, f.private) for t, f in schema_docs.domain_events().items()}
    past = dict(live)
    vote = live["governance:vote:cast"]
    past["governance:vote:cast"] = PastFields(vote.public - {"choice"}, vote.private)
    del past["record:witness:retired"]
    past["record:gone:away"] = PastFields(frozenset({"x"}), frozenset())
    monkeypatch.setattr(schema_docs, "PAST_SCHEMAS", {1: past})
    assert schema_docs.schema_changes(2) == [
        "the envelope gains `schema`",
        "`governance:vote:cast` gains `choice`, in clear",
        "`record:gone:away` is no longer written (older entries still read)",
        "`record:witness:retired` is a new event type",
    ]
    assert "| `choice` | in clear | 2 |" in schema_docs.render()
    assert PAST_SCHEMAS[1]["governance:vote:cast"].public >= {"member", "choice"}
