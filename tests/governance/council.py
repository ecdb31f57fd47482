"""A council founded and run through governance's services (no HTTP), for the tests that call
services directly: five member states with one delegate each, and a motion carried through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from commonlab.db import Database
from commonlab.governance import service as governance
from commonlab.governance.models import Motion
from commonlab.governance.rules import Choice, MotionKind
from commonlab.governance.schemas import CouncilCreate, FoundingMember, MotionCreate
from commonlab.policy.principal import Principal, Role
from tests.helpers import FOUNDERS
from tests.identity.people import signed_in

__all__ = ["found", "pass_motion", "table"]


def found(db: Database, operator: Principal) -> dict[str, Principal]:
    """Found the council of FOUNDERS; each state's delegate, by state code."""
    with db.session() as session:
        governance.found_council(
            session,
            operator,
            CouncilCreate(members=[FoundingMember.model_validate(m) for m in FOUNDERS]),
        )
    delegates = {}
    for member in FOUNDERS:
        person, delegate = signed_in(db, operator, f"Delegate of {member['name']}", Role.DELEGATE)
        with db.session() as session:
            governance.appoint_delegate(session, operator, member["code"], person.id)
        delegates[member["code"]] = delegate
    return delegates


def table(db: Database, delegate: Principal, kind: MotionKind, payload: dict[str, Any]) -> Motion:
    with db.session() as session:
        return governance.table_motion(
            session,
            delegate,
            MotionCreate(
                kind=kind,
                title=f"{kind} motion",
                payload=payload,
                closes_at=datetime.now(UTC) + timedelta(minutes=5),
            ),
        )


def pass_motion(
    db: Database, delegates: dict[str, Principal], kind: MotionKind, payload: dict[str, Any]
) -> Motion:
    """Table a motion and have every state vote yes: the last vote closes it at once."""
    motion = table(db, delegates["IT"], kind, payload)
    for delegate in delegates.values():
        with db.session() as session:
            governance.cast_vote(session, delegate, motion.id, Choice.YES)
    with db.session() as session:
        return session.get_one(Motion, motion.id)
