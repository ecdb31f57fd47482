"""simulator/service.py called directly (no HTTP): attaching a what-if to an adopt_regulation
motion writes the simulation and its record entry in one transaction; a refused one writes
neither; the motion's simulations read back, newest last."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from commonlab.errors import InvalidInput, NotFound
from commonlab.governance.rules import MotionKind
from commonlab.pagination import PageParams
from commonlab.record.canonical import canonical_json
from commonlab.simulator import service as simulator
from commonlab.simulator.schemas import WhatIfCreate
from tests.governance.council import found, table
from tests.identity.people import operator_principal
from tests.record.entries import last_entry, written
from tests.simulator.whatifs import PROPOSED, changed, whatif_body


@pytest.fixture
def operator(facility, operator_token):
    return operator_principal(facility.db, operator_token)


@pytest.fixture
def delegates(facility, operator):
    return found(facility.db, operator)


@pytest.fixture
def motion(facility, delegates):
    return table(
        facility.db, delegates["IT"], MotionKind.ADOPT_REGULATION, {"regulation": PROPOSED}
    )


def test_attaching_a_whatif_stores_it_and_records_its_digest(facility, delegates, motion):
    body = WhatIfCreate.model_validate(whatif_body())
    with facility.db.session() as db:
        attached = simulator.attach_whatif(db, delegates["FR"], motion.id, body)
    assert attached.motion_id == motion.id
    assert attached.attached_by == "Delegate of France"
    digest = hashlib.sha256(canonical_json(body.model_dump(mode="json"))).hexdigest()
    assert attached.sha256 == digest

    entry = last_entry(facility.db, "simulator:whatif:attached")
    assert entry["subject"] == f"motion/{motion.id}"
    assert entry["actor"]["role"] == "delegate"
    assert entry["data"] == {
        "whatif": attached.id,
        "sha256": digest,
        "policy": "commonlab",
        "jobs": body.workload.jobs,
        "source": None,  # what it replayed: not stated by this client
        "in_force": {"version": 0, "sha256": body.in_force.regulation.sha256},
        "proposed": {"sha256": body.proposed.regulation.sha256},
    }
    with facility.db.session() as db:
        assert simulator.latest_whatif(db, delegates["IT"], motion.id) == attached
        listed = simulator.whatifs(db, delegates["IT"], motion.id, PageParams(limit=10))
    assert [w.id for w in listed.items] == [attached.id]


def test_a_whatif_says_which_workload_it_replayed(facility, delegates, motion):
    raw = whatif_body()
    raw["workload"]["source"] = {
        "kind": "facility",
        "from": "2026-09-01T00:00:00Z",
        "to": "2026-12-02T00:00:00Z",
        "jobs": 412,
    }
    body = WhatIfCreate.model_validate(raw)
    with facility.db.session() as db:
        attached = simulator.attach_whatif(db, delegates["FR"], motion.id, body)
    # Stored and hashed as sent: `from` and `to`, not the model's own names for them.
    sent = canonical_json(body.model_dump(mode="json", by_alias=True))
    assert b'"from":"2026-09-01T00:00:00Z"' in sent
    assert attached.sha256 == hashlib.sha256(sent).hexdigest()
    source = attached.document.workload.source
    assert source is not None and (source.kind, source.jobs) == ("facility", 412)
    assert source.end - source.start == timedelta(days=92)
    assert last_entry(facility.db, "simulator:whatif:attached")["data"]["source"] == "facility"


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("in_force.regulation.version", 7, "no regulation version 7"),
        ("proposed.regulation.sha256", "f" * 64, "not the regulation motion"),
    ],
)
def test_a_refused_whatif_writes_nothing(facility, delegates, motion, path, value, fragment):
    body = WhatIfCreate.model_validate(changed(whatif_body(), path, value))
    with facility.db.session() as db, pytest.raises(InvalidInput, match=fragment):
        simulator.attach_whatif(db, delegates["IT"], motion.id, body)
    assert written(facility.db, "simulator:") == []
    with facility.db.session() as db:
        assert simulator.latest_whatif(db, delegates["IT"], motion.id) is None


def test_a_whatif_needs_a_motion_that_exists(facility, delegates):
    body = WhatIfCreate.model_validate(whatif_body())
    with facility.db.session() as db, pytest.raises(NotFound, match="no motion with id 999"):
        simulator.attach_whatif(db, delegates["IT"], 999, body)
    assert written(facility.db, "simulator:") == []
