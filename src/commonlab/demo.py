"""A small demo facility for `commonlab up --demo`: real rows made through the services (so
the record shows them too), enough for a newcomer to see something at once: institutions,
people in every role, a council of five that adopted a regulation by vote, and Estonia's
admission open for votes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from commonlab.allocation import service as allocation
from commonlab.allocation.schemas import (
    CallCreate,
    Criterion,
    ProposalCreate,
    ReleasePlan,
    ReservationCreate,
    ReviewCreate,
)
from commonlab.db import utcnow
from commonlab.governance import service as governance
from commonlab.governance.rules import Choice, MotionKind
from commonlab.governance.schemas import CouncilCreate, FoundingMember, MotionCreate
from commonlab.identity import service
from commonlab.identity.schemas import (
    ClearanceCreate,
    InstitutionCreate,
    InstitutionKind,
    PersonCreate,
    TokenCreate,
)
from commonlab.policy.principal import SYSTEM, Principal, Role, Scope
from commonlab.regulation.document import CapacitySplit, default_regulation

if TYPE_CHECKING:
    from commonlab.identity.models import Institution, Person

__all__ = ["seed_demo"]

INSTITUTIONS = [
    ("University of Nairobi", "KE", InstitutionKind.UNIVERSITY),
    ("Sapienza University of Rome", "IT", InstitutionKind.UNIVERSITY),
    ("University of Tartu", "EE", InstitutionKind.UNIVERSITY),
    ("Institut Pasteur", "FR", InstitutionKind.RESEARCH_LAB),
    ("Lindqvist Speech AB", "SE", InstitutionKind.SME),
    ("Italian Ministry of Economy and Finance", "IT", InstitutionKind.GOVERNMENT),
]

# name, institution index, roles, clearance level (or None)
PEOPLE = [
    ("Wanjiru Kamau", 0, [Role.PI, Role.RESEARCHER], 1),
    ("Otieno Odhiambo", 0, [Role.RESEARCHER], None),
    ("Giulia Rossi", 1, [Role.DELEGATE], None),
    ("Kadri Tamm", 2, [Role.DELEGATE, Role.REVIEWER], None),
    ("Amélie Durand", 3, [Role.SAFETY_OFFICER], 3),
    ("Erik Lindqvist", 4, [Role.PI, Role.RESEARCHER], 2),
    ("Marco Bianchi", 5, [Role.AUDITOR], None),
    ("Claire Martin", 3, [Role.DELEGATE], None),
    ("Jonas Weber", None, [Role.DELEGATE], None),
    ("Lucía García", None, [Role.DELEGATE], None),
    ("Sofia Lindberg", None, [Role.DELEGATE], None),
    ("Francesca Conti", 1, [Role.REVIEWER], None),
    ("Asha Mwangi", 0, [Role.REVIEWER], None),
    ("Luca Ferri", 1, [Role.PI, Role.RESEARCHER], None),
]

# code, name, contribution, the delegate's name
FOUNDERS = [
    ("IT", "Italy", "25", "Giulia Rossi"),
    ("FR", "France", "25", "Claire Martin"),
    ("DE", "Germany", "20", "Jonas Weber"),
    ("ES", "Spain", "15", "Lucía García"),
    ("SE", "Sweden", "15", "Sofia Lindberg"),
]


def seed_demo(db: Session) -> str | None:
    """Seed once. Returns a write token for the demo's PI (so a newcomer can submit a job to
    her project at once), or None when the facility already has institutions."""
    if service.summary(db)["institutions"]:
        return None
    institutions = [
        service.create_institution(db, SYSTEM, InstitutionCreate(name=n, country=c, kind=k))
        for n, c, k in INSTITUTIONS
    ]
    people = {}
    for name, where, roles, level in PEOPLE:
        institution_id = None if where is None else institutions[where].id
        person = service.create_person(
            db, SYSTEM, PersonCreate(name=name, institution_id=institution_id, roles=roles)
        )
        people[name] = person
        if level is not None:
            service.grant_clearance(
                db,
                SYSTEM,
                person.id,
                ClearanceCreate(level=level, expires_at=utcnow() + timedelta(days=90)),
            )
    _seed_council(db, people)
    _seed_allocations(db, people, institutions)
    pi = people["Wanjiru Kamau"]
    _, token = service.issue_token(
        db, SYSTEM, pi.id, TokenCreate(name="demo", scopes=[Scope.READ, Scope.WRITE])
    )
    return token


def _seed_council(db: Session, people: dict[str, Person]) -> None:
    """Found a council of five, adopt a regulation by vote, and leave Estonia's admission open."""
    members = [FoundingMember(code=c, name=n, contribution=Decimal(p)) for c, n, p, _ in FOUNDERS]
    governance.found_council(db, SYSTEM, CouncilCreate(members=members))
    seats = {}
    for code, _, _, delegate in FOUNDERS:
        governance.appoint_delegate(db, SYSTEM, code, people[delegate].id)
        seats[code] = _delegate(people[delegate])

    now = utcnow()
    regulation = default_regulation().model_copy(
        update={
            "title": "Regulation of the facility, 2027",
            "capacity": CapacitySplit(
                national_pools=Decimal(45),
                open_calls=Decimal(30),
                smes_and_public_bodies=Decimal(20),
                directors_reserve=Decimal(5),
            ),
        }
    )
    adopted = governance.table_motion(
        db,
        seats["FR"],
        MotionCreate(
            kind=MotionKind.ADOPT_REGULATION,
            title="Adopt the 2027 regulation: more capacity for SMEs and public bodies",
            payload={"regulation": regulation.model_dump(mode="json")},
            closes_at=now + timedelta(minutes=2),
        ),
    )
    for code, choice in [
        ("IT", "yes"),
        ("FR", "yes"),
        ("DE", "yes"),
        ("ES", "abstain"),
        ("SE", "no"),
    ]:
        governance.cast_vote(db, seats[code], adopted.id, Choice(choice))

    estonia = governance.table_motion(
        db,
        seats["SE"],
        MotionCreate(
            kind=MotionKind.ADMIT_MEMBER,
            title="Admit Estonia to the facility",
            text="Estonia asks to join; its delegate-designate is Kadri Tamm.",
            payload={
                "code": "EE",
                "name": "Estonia",
                "scale": {"IT": "23", "FR": "23", "DE": "19", "ES": "13", "SE": "13", "EE": "9"},
            },
            closes_at=now + timedelta(days=7),
        ),
    )
    for code in ("SE", "IT"):
        governance.cast_vote(db, seats[code], estonia.id, Choice.YES)


def _seed_allocations(
    db: Session, people: dict[str, Person], institutions: list[Institution]
) -> None:
    """An open call for speech models; Wanjiru's proposal reviewed (Asha, at her own
    university, is excluded), awarded, used; a second, larger one waiting for the council."""
    with db.begin():  # resolve who acts before the use cases open their own transactions
        operator = _acting(service.people_with_role(db, Role.OPERATOR)[0])
        pi = _acting(people["Wanjiru Kamau"])
        reviewer = _acting(people["Francesca Conti"])
        giulia = _acting(people["Giulia Rossi"])
        asha = _acting(people["Asha Mwangi"])
        others = {name: _acting(people[name]) for name in ("Erik Lindqvist", "Luca Ferri")}
    now = utcnow()
    call = allocation.create_call(
        db,
        operator,
        CallCreate(
            title="Multilingual speech models",
            description="Open speech recognition and synthesis for under-served languages.",
            pool="open_calls",
            budget={"H100": Decimal(200_000), "cpu": Decimal(10_000)},
            opens_at=now - timedelta(days=1),
            closes_at=now + timedelta(days=60),
            rubric=[
                Criterion(criterion="excellence", weight=Decimal(2)),
                Criterion(criterion="openness", weight=Decimal(1)),
            ],
        ),
    )
    today = now.date()
    plan = ReleasePlan(weights=True, data=True, code=True, licence="Apache-2.0")
    small, large = (
        allocation.submit_proposal(
            db,
            pi,
            ProposalCreate(
                call_id=call.id,
                institution_id=institutions[0].id,
                title=title,
                abstract=abstract,
                team=[people["Otieno Odhiambo"].id],
                # CPU hours too: on the embedded default, the local machine runs the jobs.
                requested={"H100": Decimal(hours), "cpu": Decimal(500)},
                starts_on=today,
                ends_on=today + timedelta(days=365),
                release_plan=plan,
            ),
        )
        for title, abstract, hours in [
            ("Swahili speech recognition", "An open ASR model and corpus for Swahili.", 20_000),
            ("East African speech at scale", "Twelve languages, one open model.", 80_000),
        ]
    )
    for proposal in (small, large):
        allocation.assign_reviewer(db, operator, proposal.id, reviewer.person_id)
        allocation.score_review(
            db,
            reviewer,
            proposal.id,
            ReviewCreate(scores={"excellence": 5, "openness": 4}, comment="Strong, fully open."),
        )
    allocation.reply(db, pi, small.id, "Thank you: the corpus will carry per-record licences.")
    awarded = allocation.decide_proposal(db, operator, small.id, award=True)
    pending = allocation.decide_proposal(db, operator, large.id, award=True)
    assert awarded is not None and pending is not None
    held = allocation.reserve(
        db,
        operator,
        awarded.id,
        ReservationCreate(accelerator="H100", hours=Decimal(1200), job="demo-1"),
    )
    allocation.settle(db, operator, held.id, Decimal(1130))
    # Two projects from member states, so the share accounting has something to count.
    for name, where, hours, used, reviewed_by in [
        ("Erik Lindqvist", 4, 6_000, 800, reviewer),
        ("Luca Ferri", 1, 9_000, 1_400, asha),
    ]:
        proposal = allocation.submit_proposal(
            db,
            others[name],
            ProposalCreate(
                call_id=call.id,
                institution_id=institutions[where].id,
                title=f"Speech technology at {institutions[where].name}",
                abstract="Open models for the facility's languages.",
                requested={"H100": Decimal(hours)},
                starts_on=today,
                ends_on=today + timedelta(days=365),
                release_plan=plan,
            ),
        )
        allocation.assign_reviewer(db, operator, proposal.id, reviewed_by.person_id)
        allocation.score_review(
            db, reviewed_by, proposal.id, ReviewCreate(scores={"excellence": 4, "openness": 4})
        )
        granted = allocation.decide_proposal(db, operator, proposal.id, award=True)
        assert granted is not None
        hold = allocation.reserve(
            db,
            operator,
            granted.id,
            ReservationCreate(accelerator="H100", hours=Decimal(used), job=name),
        )
        allocation.settle(db, operator, hold.id, Decimal(used))
    governance.table_motion(
        db,
        giulia,
        MotionCreate(
            kind=MotionKind.APPROVE_ALLOCATION,
            title="Approve 80,000 H100 hours for East African speech",
            payload={"allocation_id": pending.id},
            closes_at=now + timedelta(days=7),
        ),
    )


def _acting(person: Person) -> Principal:
    # The demo acts in-process as these people, as their own tokens would.
    return Principal(
        pseudonym=person.pseudonym,
        person_id=person.id,
        name=person.name,
        roles=frozenset(Role(grant.role) for grant in person.roles),
        scopes=frozenset(Scope),
    )


def _delegate(person: Person) -> Principal:
    # The demo acts for its delegates in-process, as their own tokens would.
    return Principal(
        pseudonym=person.pseudonym,
        person_id=person.id,
        name=person.name,
        roles=frozenset({Role.DELEGATE}),
        scopes=frozenset({Scope.READ, Scope.WRITE}),
    )
