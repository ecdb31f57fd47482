"""Allocation's use cases called directly (no HTTP), on both databases: a call, a proposal,
review with a conflict of interest refused, the award, its tranches, and the ledger's hold,
settle and release. Each test asserts the record entry the use case wrote — or that a
refused one wrote none."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from commonlab.allocation import service as allocation
from commonlab.allocation.models import Allocation, Proposal
from commonlab.allocation.schemas import (
    CallCreate,
    ConflictCreate,
    ProposalCreate,
    ReservationCreate,
    ReviewCreate,
    SubAllocationCreate,
)
from commonlab.errors import AccessDenied, Conflict, InvalidInput
from commonlab.facility import Facility
from commonlab.identity import service as identity
from commonlab.identity.schemas import InstitutionCreate, PersonCreate, TokenCreate
from commonlab.policy.principal import Principal, Scope
from commonlab.record.models import Entry

T = TypeVar("T")
TODAY = date.today()


def _last_entry_id(facility: Facility) -> int:
    with facility.db.session() as db:
        return db.scalar(select(func.max(Entry.id))) or 0


def written(facility: Facility, use_case: Callable[[], T]) -> tuple[T, list[dict[str, Any]]]:
    """Run one use case; return its result and the record entries it wrote, oldest first."""
    before = _last_entry_id(facility)
    result = use_case()
    with facility.db.session() as db:
        rows = db.scalars(select(Entry).where(Entry.id > before).order_by(Entry.id)).all()
        return result, [json.loads(row.body) for row in rows]


def refused(facility: Facility, error: type[Exception], match: str, use_case: Callable[[], Any]):
    """The use case is refused with `error` and leaves nothing on the record."""
    before = _last_entry_id(facility)
    with pytest.raises(error, match=match):
        use_case()
    assert _last_entry_id(facility) == before


# A facility with people in it ----------------------------------------------------------------


@dataclass
class World:
    facility: Facility
    operator: Principal
    pi: Principal
    colleague: Principal  # a reviewer at the PI's institution
    reviewer: Principal  # a reviewer elsewhere, free of conflicts
    member: Principal  # on the PI's team

    def run(self, use_case: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.facility.db.session() as db:
            return use_case(db, *args, **kwargs)


def _signed_in(db: Any, operator: Principal, name: str, roles: list[str], at: int) -> Principal:
    person = identity.create_person(
        db, operator, PersonCreate(name=name, roles=roles, institution_id=at)
    )
    _, secret = identity.issue_token(
        db, operator, person.id, TokenCreate(scopes=[Scope.READ, Scope.WRITE])
    )
    return identity.authenticate(db, secret)


@pytest.fixture
def world(facility: Facility) -> World:
    with facility.db.session() as db:
        operator = identity.authenticate(db, identity.bootstrap_operator(db) or "")
        ids = [
            identity.create_institution(
                db, operator, InstitutionCreate(name=name, country=country, kind="university")
            ).id
            for name, country in [("Politecnico", "IT"), ("Sorbonne", "FR")]
        ]
        return World(
            facility,
            operator,
            pi=_signed_in(db, operator, "Ada PI", ["pi", "researcher"], ids[0]),
            colleague=_signed_in(db, operator, "Carla Colleague", ["reviewer"], ids[0]),
            reviewer=_signed_in(db, operator, "Rémi Reviewer", ["reviewer"], ids[1]),
            member=_signed_in(db, operator, "Marco Member", ["researcher"], ids[0]),
        )


def _call(world: World) -> int:
    now = datetime.now(UTC)
    req = CallCreate(
        title="Open call 1",
        pool="open_calls",
        budget={"H100": Decimal(5000)},
        opens_at=now - timedelta(minutes=5),
        closes_at=now + timedelta(days=30),
        rubric=[{"criterion": "excellence", "weight": Decimal(1)}],
    )
    return world.run(allocation.create_call, world.operator, req).id


def _proposal(world: World, call_id: int) -> int:
    req = ProposalCreate(
        call_id=call_id,
        title="Small models for rare languages",
        abstract="We train small models.",
        team=[world.member.person_id or 0],
        requested={"H100": Decimal(800)},
        starts_on=TODAY,
        ends_on=TODAY + timedelta(days=365),
        release_plan={"weights": True, "data": True, "code": True, "licence": "MIT"},
    )
    return world.run(allocation.submit_proposal, world.pi, req).id


def _reviewed(world: World) -> int:
    proposal_id = _proposal(world, _call(world))
    world.run(allocation.assign_reviewer, world.operator, proposal_id, world.reviewer.person_id)
    world.run(
        allocation.score_review,
        world.reviewer,
        proposal_id,
        ReviewCreate(scores={"excellence": 4}),
    )
    return proposal_id


def _awarded(world: World) -> Allocation:
    awarded = world.run(allocation.decide_proposal, world.operator, _reviewed(world), award=True)
    assert awarded is not None
    return awarded


# Calls and proposals ---------------------------------------------------------------------------


def test_a_call_opens_on_the_record(world: World) -> None:
    call_id, entries = written(world.facility, lambda: _call(world))
    [entry] = entries
    assert entry["type"] == "allocation:call:opened"
    assert entry["subject"] == f"call/{call_id}"
    assert entry["actor"]["role"] == "operator"
    assert entry["data"]["pool"] == "open_calls"
    assert entry["data"]["pool_percent"] == "30"
    assert entry["data"]["budget"] == {"H100": "5000"}


def test_a_proposal_is_on_the_record_as_commitments_to_its_text(world: World) -> None:
    call_id = _call(world)
    proposal_id, entries = written(world.facility, lambda: _proposal(world, call_id))
    [entry] = entries
    assert entry["type"] == "allocation:proposal:submitted"
    assert entry["subject"] == f"proposal/{proposal_id}"
    assert entry["actor"] == {"id": world.pi.pseudonym}
    assert entry["data"]["call"] == call_id
    assert entry["data"]["requested"] == {"H100": "800"}
    assert entry["data"]["level"] == "CL-1"
    for private in ("title", "abstract"):
        assert entry["data"][private]["commitment"].startswith("sha256:")
    with world.facility.db.session() as db:
        pi = identity.person(db, world.pi.person_id or 0)
        assert db.get_one(Proposal, proposal_id).institution_id == pi.institution_id


def test_a_proposal_for_another_institution_is_refused(world: World) -> None:
    call_id = _call(world)
    with world.facility.db.session() as db:
        elsewhere = identity.person(db, world.reviewer.person_id or 0).institution_id
    req = ProposalCreate(
        call_id=call_id,
        institution_id=elsewhere,
        title="On behalf of",
        abstract="x",
        requested={"H100": Decimal(1)},
        starts_on=TODAY,
        ends_on=TODAY + timedelta(days=30),
        release_plan={"weights": True, "data": True, "code": True, "licence": "MIT"},
    )
    refused(
        world.facility,
        InvalidInput,
        "a proposal's institution is its PI's",
        lambda: world.run(allocation.submit_proposal, world.pi, req),
    )


# Review, free of conflicts of interest ---------------------------------------------------------


def test_a_reviewer_at_the_pis_institution_is_refused_and_nothing_is_written(
    world: World,
) -> None:
    proposal_id = _proposal(world, _call(world))
    refused(
        world.facility,
        Conflict,
        "may not review proposal .*same institution as the PI",
        lambda: world.run(
            allocation.assign_reviewer, world.operator, proposal_id, world.colleague.person_id
        ),
    )


def test_a_declared_conflict_is_a_commitment_and_then_refuses_the_assignment(
    world: World,
) -> None:
    proposal_id = _proposal(world, _call(world))
    declared, entries = written(
        world.facility,
        lambda: world.run(
            allocation.declare_conflict,
            world.reviewer,
            ConflictCreate(person_id=world.pi.person_id, reason="we wrote a book together"),
        ),
    )
    assert declared.person_id == world.pi.person_id
    [entry] = entries
    assert entry["type"] == "allocation:conflict:declared"
    assert entry["subject"] == f"reviewer/{world.reviewer.pseudonym}"
    assert set(entry["data"]) == {"with", "reason"}
    assert all(v["commitment"].startswith("sha256:") for v in entry["data"].values())
    refused(
        world.facility,
        Conflict,
        "declared a conflict",
        lambda: world.run(
            allocation.assign_reviewer, world.operator, proposal_id, world.reviewer.person_id
        ),
    )
    with world.facility.db.session() as db:
        reasons = dict(
            (person.id, why)
            for person, why in allocation.eligible_reviewers(db, world.operator, proposal_id)
        )
    assert reasons[world.reviewer.person_id] == ["declared a conflict"]
    assert reasons[world.colleague.person_id] == ["same institution as the PI"]


def test_assignment_and_a_score_are_on_the_record(world: World) -> None:
    proposal_id = _proposal(world, _call(world))
    _, assigned = written(
        world.facility,
        lambda: world.run(
            allocation.assign_reviewer, world.operator, proposal_id, world.reviewer.person_id
        ),
    )
    assert [(e["type"], e["subject"], e["data"]) for e in assigned] == [
        (
            "allocation:review:assigned",
            f"proposal/{proposal_id}",
            {"reviewer": world.reviewer.pseudonym},
        )
    ]
    _, scored = written(
        world.facility,
        lambda: world.run(
            allocation.score_review,
            world.reviewer,
            proposal_id,
            ReviewCreate(scores={"excellence": 4}, comment="Sound."),
        ),
    )
    [entry] = scored
    assert entry["type"] == "allocation:review:submitted"
    assert entry["data"]["reviewer"] == world.reviewer.pseudonym
    assert entry["data"]["scores"]["commitment"].startswith("sha256:")
    refused(
        world.facility,
        AccessDenied,
        "not assigned to review",
        lambda: world.run(
            allocation.score_review,
            world.colleague,
            proposal_id,
            ReviewCreate(scores={"excellence": 1}),
        ),
    )


# The award and its tranches --------------------------------------------------------------------


def test_an_award_writes_the_decision_and_the_public_grant(world: World) -> None:
    proposal_id = _reviewed(world)
    awarded, entries = written(
        world.facility,
        lambda: world.run(allocation.decide_proposal, world.operator, proposal_id, award=True),
    )
    assert awarded is not None and awarded.status == "active"
    decided, granted = entries
    assert decided["type"] == "allocation:proposal:decided"
    assert decided["subject"] == f"proposal/{proposal_id}"
    assert decided["data"] == {"decision": "awarded", "score": None}
    assert granted["type"] == "allocation:allocation:granted"
    assert granted["subject"] == f"allocation/{awarded.id}"
    assert granted["data"]["project"] == f"proj-{proposal_id}"
    assert granted["data"]["country"] == "IT"
    assert granted["data"]["proposal"] == proposal_id
    assert granted["data"]["institution"] == awarded.institution_id
    assert granted["data"]["budget"] == {"H100": "800"}
    assert granted["data"]["status"] == "active"
    assert granted["data"]["members"] == sorted([world.pi.pseudonym, world.member.pseudonym])


def test_tranches_release_the_budget_by_quarter_and_write_nothing(world: World) -> None:
    awarded = _awarded(world)
    tranches, entries = written(
        world.facility,
        lambda: world.run(allocation.get_tranches, world.pi, awarded.id, today=TODAY),
    )
    assert entries == []
    assert {t.accelerator for t in tranches} == {"H100"}
    assert sum((t.released for t in tranches), Decimal(0)) == Decimal(800)
    [current] = [t for t in tranches if t.current]
    assert current.quarter == 0 and current.drawn == 0 and current.reserved == 0
    assert current.available == current.released


def test_a_sub_allocation_is_on_the_record(world: World) -> None:
    awarded = _awarded(world)
    child, entries = written(
        world.facility,
        lambda: world.run(
            allocation.sub_allocate,
            world.pi,
            awarded.id,
            SubAllocationCreate(title="A sub-team", budget={"H100": Decimal(100)}),
        ),
    )
    [entry] = entries
    assert entry["type"] == "allocation:allocation:sub_allocated"
    assert entry["subject"] == f"allocation/{child.id}"
    assert entry["data"] == {
        "parent": awarded.id,
        "project": f"{awarded.project}.1",
        "title": "A sub-team",
        "budget": {"H100": "100"},
    }


def test_the_allocation_a_job_is_charged_to(world: World) -> None:
    awarded = _awarded(world)
    pick = allocation.allocation_for_job
    with world.facility.db.session() as db, db.begin():
        assert pick(db, project=awarded.project, accelerator="H100", on=TODAY).id == awarded.id
        named = pick(
            db, project=awarded.project, accelerator="H100", allocation_id=awarded.id, on=TODAY
        )
        assert named.id == awarded.id
        with pytest.raises(Conflict, match="no active allocation with cpu hours"):
            pick(db, project=awarded.project, accelerator="cpu", on=TODAY)
        with pytest.raises(InvalidInput, match="has no allocation"):
            pick(db, project="proj-x", accelerator="H100", allocation_id=awarded.id, on=TODAY)


# The ledger ------------------------------------------------------------------------------------


def _reserve(world: World, allocation_id: int, hours: str, job: str = "by-hand") -> int:
    req = ReservationCreate(accelerator="H100", hours=Decimal(hours), job=job)
    return world.run(allocation.reserve, world.operator, allocation_id, req).id


def test_a_hold_then_a_settle_each_write_their_entry(world: World) -> None:
    awarded = _awarded(world)
    held, reserved = written(world.facility, lambda: _reserve(world, awarded.id, "40"))
    assert [(e["type"], e["subject"], e["data"]) for e in reserved] == [
        (
            "allocation:ledger:reserved",
            f"allocation/{awarded.id}",
            {"ledger": held, "class": "H100", "hours": "40", "job": "by-hand", "on": str(TODAY)},
        )
    ]
    charge, settled = written(
        world.facility,
        lambda: world.run(allocation.settle, world.operator, held, Decimal("32.5")),
    )
    assert [(e["type"], e["data"]) for e in settled] == [
        (
            "allocation:ledger:settled",
            {
                "ledger": charge.id,
                "reservation": held,
                "class": "H100",
                "hours": "32.5",
                "job": "by-hand",
                "on": str(TODAY),
            },
        )
    ]
    with world.facility.db.session() as db, db.begin():
        used, still_held = allocation.usage(db, db.get_one(Allocation, awarded.id))
    assert used == {"H100": Decimal("32.5")} and still_held == {}


def test_a_release_writes_its_entry_and_a_reservation_closes_once(world: World) -> None:
    awarded = _awarded(world)
    held = _reserve(world, awarded.id, "10")
    charge, entries = written(
        world.facility, lambda: world.run(allocation.release, world.operator, held)
    )
    [entry] = entries
    assert entry["type"] == "allocation:ledger:released"
    assert entry["data"] == {
        "ledger": charge.id,
        "reservation": held,
        "class": "H100",
        "hours": "0",
        "job": "by-hand",
        "on": str(TODAY),
    }
    for again in (
        lambda: world.run(allocation.release, world.operator, held),
        lambda: world.run(allocation.settle, world.operator, held, Decimal(1)),
    ):
        refused(world.facility, Conflict, "already closed", again)


def test_a_hold_beyond_the_quarter_is_refused_and_writes_nothing(world: World) -> None:
    awarded = _awarded(world)
    refused(
        world.facility,
        Conflict,
        "H100 hours left this quarter",
        lambda: _reserve(world, awarded.id, "800"),
    )


def test_a_jobs_hold_closes_only_with_that_job(world: World) -> None:
    awarded = _awarded(world)

    def hold() -> int:
        with world.facility.db.session() as db, db.begin():
            return allocation.hold_hours(
                db, world.operator, awarded.id, accelerator="H100", hours=Decimal(5), job="job/7"
            ).id

    held, entries = written(world.facility, hold)
    assert [e["data"]["job"] for e in entries] == ["job/7"]
    refused(
        world.facility,
        Conflict,
        "closes when that job ends",
        lambda: world.run(allocation.release, world.operator, held),
    )

    def job_ends() -> Any:
        with world.facility.db.session() as db, db.begin():
            return allocation.close_reservation(db, world.operator, held, Decimal(3), job="job/7")

    _, closed = written(world.facility, job_ends)
    assert [(e["type"], e["data"]["hours"]) for e in closed] == [("allocation:ledger:settled", "3")]
