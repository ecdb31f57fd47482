"""record/service.py called directly: what `append` writes (the envelope, data in clear,
private fields as commitments, the policy set's hash), what it refuses, savepoints, and a
witness registered through the record's own service."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from commonlab import record
from commonlab.demo import seed_demo
from commonlab.errors import AccessDenied
from commonlab.identity.service import bootstrap_operator
from commonlab.policy import policy_set_hash
from commonlab.policy.principal import PUBLIC, SYSTEM
from commonlab.record.checkpoint import generate_witness
from commonlab.record.fields import UndeclaredEventError, UndeclaredFieldError
from commonlab.record.models import PrivateOpening
from commonlab.record.service import ENTRY_SCHEMA, commitment
from commonlab.record.witnesses import register_witness
from tests.identity.people import operator_principal
from tests.record.entries import last_entry, written
from tests.record.events import SampleEvent


def test_an_entry_is_its_envelope_and_declared_data(facility):
    with facility.db.session() as db, db.begin():
        appended = record.append(
            db,
            SampleEvent.Private,
            actor=SYSTEM,
            subject="tenant/1",
            data={"b": 1, "a": [1, 2]},
            private={"secret": "the tenant's data"},
        )
    with facility.db.session() as db:  # written at commit, with the entry
        opening = db.scalar(select(PrivateOpening))
    entry = last_entry(facility.db, "test:private")
    assert set(entry) == {"type", "time", "actor", "subject", "data", "policy_set", "schema"}
    assert (entry["type"], entry["subject"], entry["actor"]) == (
        "test:private",
        "tenant/1",
        {"id": "system"},
    )
    assert entry["data"]["a"] == [1, 2] and entry["data"]["b"] == 1
    assert entry["data"]["secret"]["commitment"] == commitment(opening.salt, opening.value)
    assert entry["policy_set"] == policy_set_hash()
    assert entry["schema"] == ENTRY_SCHEMA == 2
    assert appended.type == "test:private" and appended.subject == "tenant/1"


def test_append_refuses_what_is_not_declared(facility):
    with facility.db.session() as db, db.begin():
        with pytest.raises(UndeclaredEventError):
            record.append(db, "test:nobody-declared-this", actor=SYSTEM, subject="x")
        with pytest.raises(UndeclaredFieldError):
            record.append(db, SampleEvent.Entry, actor=SYSTEM, subject="x", data={"j": 1})
    assert written(facility.db, "test:") == []


def test_a_rolled_back_savepoint_takes_its_entries_back(facility):
    with facility.db.session() as db, db.begin():
        record.append(db, SampleEvent.Kept, actor=SYSTEM, subject="kept")
        with pytest.raises(RuntimeError), record.savepoint(db):
            record.append(db, SampleEvent.Undone, actor=SYSTEM, subject="undone")
            raise RuntimeError("the effect failed")
    assert [e["subject"] for e in written(facility.db, "test:")] == ["kept"]


def test_an_operator_registers_a_witness_on_the_record(facility, operator_token):
    operator = operator_principal(facility.db, operator_token)
    _, verifier_key = generate_witness("audit.example.ee")
    with facility.db.session() as db:
        with pytest.raises(AccessDenied):
            register_witness(db, PUBLIC, name="audit.example.ee", verifier_key=verifier_key)
        register_witness(db, operator, name="audit.example.ee", verifier_key=verifier_key)
    entry = last_entry(facility.db, "record:witness:registered")
    assert entry["subject"] == "witness/audit.example.ee"
    assert entry["data"] == {"verifier_key": verifier_key}
    assert entry["actor"]["role"] == "operator"


def test_every_domains_entries_name_the_policy_set(facility):
    """The demo facility writes entries from identity, governance (and what its motions do)
    and allocation, each through its own services, and an operator registers a witness:
    every entry carries the hash, added in one place."""
    with facility.db.session() as db:
        token = bootstrap_operator(db)
    assert token is not None
    with facility.db.session() as db:
        seed_demo(db)
    _, verifier_key = generate_witness("audit.example.ee")
    with facility.db.session() as db:
        operator = operator_principal(facility.db, token)
        register_witness(db, operator, name="audit.example.ee", verifier_key=verifier_key)
    entries = written(facility.db)
    domains = {entry["type"].split(":")[0] for entry in entries}
    assert {"identity", "governance", "allocation", "record"} <= domains
    assert {entry["policy_set"] for entry in entries} == {policy_set_hash()}
