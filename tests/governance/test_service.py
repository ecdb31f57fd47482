"""governance/service.py called directly (no HTTP): founding, delegates, motions, votes and
what a passed motion does, each with the record entry it writes; and the effects port."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commonlab import wiring
from commonlab.errors import ConfigError
from commonlab.governance import effects
from commonlab.governance import service as governance
from commonlab.governance.rules import Choice, MotionKind
from commonlab.policy import policy_set_hash
from commonlab.policy.principal import Role
from commonlab.regulation import service as regulation
from commonlab.regulation.document import default_regulation
from tests.governance.council import found, pass_motion, table
from tests.helpers import FOUNDERS, close_when_due
from tests.identity.people import operator_principal, signed_in
from tests.record.entries import last_entry, written


@pytest.fixture
def operator(facility, operator_token):
    return operator_principal(facility.db, operator_token)


@pytest.fixture
def delegates(facility, operator):
    return found(facility.db, operator)


def test_founding_the_council_records_members_and_scale(facility, delegates):
    entry = last_entry(facility.db, "governance:council:founded")
    assert entry["subject"] == "council"
    assert entry["data"]["members"] == [{"code": m["code"], "name": m["name"]} for m in FOUNDERS]
    assert entry["data"]["scale"] == {"DE": "20", "ES": "15", "FR": "25", "IT": "25", "SE": "15"}
    with facility.db.session() as db, db.begin():
        assert governance.active_codes(db) == {"DE", "ES", "FR", "IT", "SE"}


def test_appointing_and_ending_a_delegate_names_them(facility, operator, delegates):
    person, _ = signed_in(facility.db, operator, "Marta Novak")
    with facility.db.session() as db:
        governance.appoint_delegate(db, operator, "SE", person.id)
    appointed = last_entry(facility.db, "governance:delegate:appointed")
    assert appointed["subject"] == "member/SE"
    assert appointed["data"] == {"delegate": person.pseudonym, "name": "Marta Novak"}
    assert appointed["actor"]["role"] == "operator"
    # The appointment brought the delegate role with it, on the record as its own grant.
    assert last_entry(facility.db, "identity:role:granted")["data"]["role"] == "delegate"
    with facility.db.session() as db:
        governance.end_delegate(db, operator, "SE", person.id)
    ended = last_entry(facility.db, "governance:delegate:ended")
    assert (ended["subject"], ended["data"]["delegate"]) == ("member/SE", person.pseudonym)


def test_tabling_and_voting_are_on_the_record(facility, delegates):
    motion = table(
        facility.db, delegates["FR"], MotionKind.ADMIT_MEMBER, {"code": "KE", "name": "Kenya"}
    )
    tabled = last_entry(facility.db, "governance:motion:tabled")
    assert tabled["subject"] == f"motion/{motion.id}"
    assert tabled["data"]["kind"] == "admit_member" and tabled["data"]["for"] == "FR"
    assert tabled["data"]["payload"] == {"code": "KE", "name": "Kenya", "scale": None}
    assert tabled["actor"]["role"] == "delegate"
    with facility.db.session() as db:
        governance.cast_vote(db, delegates["IT"], motion.id, Choice.NO)
    with facility.db.session() as db:
        governance.cast_vote(db, delegates["IT"], motion.id, Choice.YES)
    votes = [e for e in written(facility.db, "governance:vote:cast")]
    assert [v["data"] for v in votes] == [
        {"member": "IT", "choice": "no", "changed": False},
        {"member": "IT", "choice": "yes", "changed": True},
    ]


def test_a_passed_motion_takes_effect_as_the_motion(facility, delegates):
    motion = pass_motion(
        facility.db, delegates, MotionKind.ADMIT_MEMBER, {"code": "KE", "name": "Kenya"}
    )
    assert motion.status == "passed"
    decided = last_entry(facility.db, "governance:motion:decided")
    assert decided["subject"] == f"motion/{motion.id}"
    assert decided["data"]["status"] == "passed" and decided["data"]["closed_early"] is True
    admitted = last_entry(facility.db, "governance:member:admitted")
    assert admitted["subject"] == "member/KE"
    assert admitted["data"] == {"name": "Kenya", "motion": motion.id}
    # The effect's authority is the motion itself, not an anonymous "system".
    assert admitted["actor"] == {"id": f"motion/{motion.id}"}
    assert admitted["policy_set"] == policy_set_hash()


def test_an_adopted_regulation_is_in_force_and_on_the_record(facility, delegates):
    document = default_regulation().model_dump(mode="json")
    document["allocation"]["max_request_hours"] = 500_000
    motion = pass_motion(
        facility.db, delegates, MotionKind.ADOPT_REGULATION, {"regulation": document}
    )
    with facility.db.session() as db, db.begin():
        now = regulation.in_force(db)
    assert (now.version, now.motion_id) == (1, motion.id)
    assert now.regulation.allocation.max_request_hours == 500_000
    entry = last_entry(facility.db, "governance:regulation:adopted")
    assert entry["subject"] == "regulation/1"
    assert entry["data"] == {"version": 1, "sha256": now.sha256, "motion": motion.id}
    assert entry["actor"] == {"id": f"motion/{motion.id}"}
    with facility.db.session() as db:
        assert [v.version for v in governance.regulation_history(db)] == [1, 0]
        changes = governance.regulation_diff(db, 0, 1)
    assert changes == [{"field": "allocation.max_request_hours", "from": 1_000_000, "to": 500_000}]


def test_a_council_clearance_is_granted_by_the_motion(facility, operator, delegates):
    person, _ = signed_in(facility.db, operator, "Yuki Tanaka", Role.RESEARCHER)
    expires_at = datetime.now(UTC) + timedelta(days=20)
    motion = pass_motion(
        facility.db,
        delegates,
        MotionKind.GRANT_CL4_CLEARANCE,
        {"person_id": person.id, "expires_at": expires_at.isoformat()},
    )
    assert motion.status == "passed", motion.result
    entry = last_entry(facility.db, "identity:clearance:granted")
    assert entry["actor"] == {"id": f"motion/{motion.id}"}
    assert entry["data"]["level"] == "CL-4" and entry["data"]["motion"] == motion.id


def test_a_motion_whose_effect_no_longer_fits_lapses(facility, delegates):
    first = table(
        facility.db, delegates["IT"], MotionKind.ADMIT_MEMBER, {"code": "KE", "name": "Kenya"}
    )
    pass_motion(facility.db, delegates, MotionKind.ADMIT_MEMBER, {"code": "KE", "name": "Kenya"})
    for delegate in delegates.values():
        with facility.db.session() as db:
            governance.cast_vote(db, delegate, first.id, Choice.YES)
    close_when_due(facility.db, first.id)  # Kenya, a member now, has not voted
    decided = last_entry(facility.db, "governance:motion:decided")
    assert decided["subject"] == f"motion/{first.id}"
    assert decided["data"]["status"] == "lapsed"
    assert "KE is, or was, a member state" in decided["data"]["outcome"]["effect_error"]
    assert len(written(facility.db, "governance:member:admitted")) == 1


def test_every_motion_kind_has_an_effect_once_wired(facility):
    wiring.connect()  # idempotent: the facility connected it already
    assert effects.registered() == set(MotionKind)


def test_a_kind_without_an_effect_cannot_be_tabled(facility, delegates, monkeypatch):
    without = {k: effects.effect_of(k) for k in MotionKind if k != MotionKind.CERTIFY_PARTITION}
    monkeypatch.setattr(effects, "_REGISTRY", without)
    before = written(facility.db)
    with pytest.raises(ConfigError, match="certify_partition motions have no effect"):
        table(
            facility.db,
            delegates["IT"],
            MotionKind.CERTIFY_PARTITION,
            {"partition": "gpu", "level": 3},
        )
    assert written(facility.db) == before


def test_registering_another_effect_for_a_kind_is_refused():
    effect = effects.effect_of(MotionKind.ADMIT_MEMBER)
    effects.register(MotionKind.ADMIT_MEMBER, effect)  # the same again: nothing changes
    with pytest.raises(ValueError, match="already have an effect"):
        effects.register(MotionKind.ADMIT_MEMBER, effects.Effect(effect.check, lambda *a: None))


def test_a_witness_registered_by_motion_names_the_motion(facility, delegates):
    from commonlab.record.checkpoint import generate_witness

    _, key = generate_witness("witness.example.ee")
    motion = pass_motion(
        facility.db,
        delegates,
        MotionKind.REGISTER_WITNESS,
        {"name": "witness.example.ee", "verifier_key": key},
    )
    entry = last_entry(facility.db, "record:witness:registered")
    assert entry["actor"] == {"id": f"motion/{motion.id}"}
    assert entry["data"] == {"verifier_key": key, "motion": motion.id}
