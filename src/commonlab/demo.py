"""A small demo facility for `commonlab up --demo`: real rows made through the services (so
the record shows them too), enough for a newcomer to see something at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.db import utcnow
from commonlab.identity import service
from commonlab.identity.models import Institution, InstitutionKind
from commonlab.identity.principal import SYSTEM, Role
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
    for name, where, roles, level in PEOPLE:
        person = service.create_person(
            db,
            SYSTEM,
            PersonCreate(name=name, institution_id=institutions[where].id, roles=roles),
        )
        if level is not None:
            service.grant_clearance(
                db,
                SYSTEM,
                person.id,
                ClearanceCreate(level=level, expires_at=utcnow() + timedelta(days=365)),
            )
    return True
