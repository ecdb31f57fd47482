"""Auditing a test facility as anyone would: its log read through its tiles, its public
routes without a token; and the demo facility built as `up --demo` builds it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from commonlab.artifacts.mount import registry_for
from commonlab.audit.artifacts import ArtifactsBook
from commonlab.audit.compute import ComputeBook
from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry, HttpSource, VerifiedLog, read_log
from commonlab.audit.published import Published
from commonlab.audit.replay import Replay
from commonlab.demo_models import build_demo_models
from commonlab.facility import Facility
from tests.helpers import sequence_now
from tests.journeys.conftest import Demo

TEST_SERVER = "http://testserver"  # where a TestClient answers


def read_test_log(client: Any, app: Any, facility: Facility) -> VerifiedLog:
    """The facility's log, everything committed so far sequenced and signed first."""
    sequence_now(app)
    return read_log(HttpSource(TEST_SERVER, client), facility.signer.verifier_key())


def audit_books(log: VerifiedLog, published: Published) -> Findings:
    """The artifacts and compute books alone (the other books are tested beside theirs)."""
    books = [ArtifactsBook(log.note), ComputeBook()]
    Replay(books).feed(log.entries)
    findings = Findings()
    for book in books:
        book.compare(published, findings)
    return findings


def audit_test_facility(
    client: Any, app: Any, facility: Facility, log: VerifiedLog | None = None
) -> Findings:
    log = log or read_test_log(client, app, facility)
    return audit_books(log, Published(TEST_SERVER, client))


def claims(findings: Findings, book: str) -> dict[str, tuple[Any, Any]]:
    """Each difference of `book`: its claim → (what the record says, what the facility)."""
    return {d.claim: (d.replayed, d.published) for d in findings.differences if d.book == book}


def with_entry(log: VerifiedLog, index: int, **data: Any) -> VerifiedLog:
    """The log with entry `index`'s data changed: an entry made by hand, as a facility that
    rewrote its record would serve it (the audit replays what it is given)."""
    entries = list(log.entries)
    entry: Entry = entries[index]
    entries[index] = dataclasses.replace(entry, data={**entry.data, **data})
    return dataclasses.replace(log, entries=entries)


def build_demo_models_for(demo: Demo) -> None:
    """`up --demo` to the end: its data published, a model trained as job 1 and evaluated as
    job 2, and everything sequenced."""
    pytest.importorskip("torch")
    pytest.importorskip("inspect_ai")
    facility = demo.served.facility
    said: list[str] = []
    with facility.db.session() as db:
        build_demo_models(
            db,
            registry_for(facility),
            pi_token=demo.pi_token,
            executor=demo.served.settings.executor,
            say=said.append,
            poll_seconds=0.2,
        )
    assert not any("could not" in line for line in said), said
    facility.sequence_now()
