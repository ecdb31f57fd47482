"""regulation/service.py called directly: the provisional version until the council adopts
one, storing an adopted version, which version was in force when, and history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commonlab.db import utcnow
from commonlab.errors import NotFound
from commonlab.governance.rules import MotionKind
from commonlab.regulation import service as regulation
from commonlab.regulation.document import default_regulation, regulation_hash
from tests.governance.council import found, pass_motion
from tests.identity.people import operator_principal
from tests.record.entries import last_entry


def test_the_provisional_regulation_is_in_force_until_one_is_adopted(facility):
    with facility.db.session() as db, db.begin():
        now = regulation.in_force(db)
        assert regulation.history(db) == [now]
        assert regulation.version(db, 0) == now
        with pytest.raises(NotFound, match="no regulation version 1"):
            regulation.version(db, 1)
    assert (now.version, now.adopted_at, now.motion_id) == (0, None, None)
    assert now.regulation == default_regulation()
    assert now.sha256 == regulation_hash(default_regulation())


def test_an_adopted_version_is_stored_and_in_force_from_its_adoption(facility, operator_token):
    delegates = found(facility.db, operator_principal(facility.db, operator_token))
    before = utcnow()
    document = default_regulation().model_copy(update={"title": "Regulation of 2027"})
    motion = pass_motion(
        facility.db,
        delegates,
        MotionKind.ADOPT_REGULATION,
        {"regulation": document.model_dump(mode="json")},
    )
    with facility.db.session() as db, db.begin():
        adopted = regulation.in_force(db)
        assert adopted.version == 1 and adopted.motion_id == motion.id
        assert adopted.regulation.title == "Regulation of 2027"
        assert adopted.sha256 == regulation_hash(document)
        assert regulation.version(db, 1) == adopted
        assert [v.version for v in regulation.history(db)] == [1, 0]
        # Asked about a moment before the adoption, the provisional one was in force.
        assert regulation.in_force(db, at=before - timedelta(seconds=1)).version == 0
    # Governance puts the adoption on the record; the version and hash are the stored ones.
    entry = last_entry(facility.db, "governance:regulation:adopted")
    assert entry["data"] == {"version": 1, "sha256": adopted.sha256, "motion": motion.id}


def test_adopting_stores_the_next_version(facility, operator_token):
    delegates = found(facility.db, operator_principal(facility.db, operator_token))
    motion = pass_motion(
        facility.db,
        delegates,
        MotionKind.ADOPT_REGULATION,
        {"regulation": default_regulation().model_dump(mode="json")},
    )
    with facility.db.session() as db, db.begin():
        again = regulation.adopt(db, default_regulation(), motion_id=motion.id)
    assert again.version == 2 and again.motion_id == motion.id
    with facility.db.session() as db, db.begin():
        assert regulation.in_force(db).version == 2
