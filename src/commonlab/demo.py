"""A small demo facility for `commonlab up --demo`: real rows made through the services (so
the record shows them too), enough for a newcomer to see something at once: institutions,
people in every role, a council of five that adopted a regulation by vote, and Estonia's
admission open for votes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.db import utcnow
from commonlab.governance import service as governance
from commonlab.governance.regulation import CapacitySplit, default_regulation
from commonlab.governance.rules import Choice, MotionKind
from commonlab.governance.schemas import FoundCouncil, FoundingMember, MotionCreate
from commonlab.identity import service
from commonlab.identity.models import Institution, InstitutionKind, Person
from commonlab.identity.principal import SYSTEM, Principal, Role, Scope
from commonlab.identity.schemas import ClearanceCreate, InstitutionCreate, PersonCreate

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
    ("Erik Lindqvist", 4, [Role.RESEARCHER], 2),
    ("Marco Bianchi", 5, [Role.AUDITOR], None),
    ("Claire Martin", 3, [Role.DELEGATE], None),
    ("Jonas Weber", None, [Role.DELEGATE], None),
    ("Lucía García", None, [Role.DELEGATE], None),
    ("Sofia Lindberg", None, [Role.DELEGATE], None),
]

# code, name, contribution, the delegate's name
FOUNDERS = [
    ("IT", "Italy", "25", "Giulia Rossi"),
    ("FR", "France", "25", "Claire Martin"),
    ("DE", "Germany", "20", "Jonas Weber"),
    ("ES", "Spain", "15", "Lucía García"),
    ("SE", "Sweden", "15", "Sofia Lindberg"),
]


def seed_demo(db: Session) -> bool:
    """Seed once; returns False when the facility already has institutions."""
    with db.begin():
        if db.scalar(select(Institution.id).limit(1)) is not None:
            return False
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
    return True


def _seed_council(db: Session, people: dict[str, Person]) -> None:
    """Found a council of five, adopt a regulation by vote, and leave Estonia's admission open."""
    members = [FoundingMember(code=c, name=n, contribution=Decimal(p)) for c, n, p, _ in FOUNDERS]
    governance.found_council(db, SYSTEM, FoundCouncil(members=members))
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
    governance.close_motion(db, SYSTEM, adopted.id, now=now + timedelta(minutes=2))

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


def _delegate(person: Person) -> Principal:
    # The demo acts for its delegates in-process, as their own tokens would.
    return Principal(
        pseudonym=person.pseudonym,
        person_id=person.id,
        name=person.name,
        roles=frozenset({Role.DELEGATE}),
        scopes=frozenset({Scope.READ, Scope.WRITE}),
    )
