"""People made and signed in through identity's services, for tests that call services
directly: a person with roles and the principal their token stands for."""

from __future__ import annotations

from commonlab.db import Database
from commonlab.identity import service as identity
from commonlab.identity.models import Person
from commonlab.identity.schemas import PersonCreate, TokenCreate
from commonlab.policy.principal import Principal, Role, Scope

__all__ = ["operator_principal", "signed_in"]


def operator_principal(db: Database, operator_token: str) -> Principal:
    """The first operator, as their admin token authenticates them."""
    with db.session() as session:
        return identity.authenticate(session, operator_token)


def signed_in(
    db: Database,
    operator: Principal,
    name: str,
    *roles: Role,
    scopes: tuple[Scope, ...] = (Scope.READ, Scope.WRITE),
) -> tuple[Person, Principal]:
    """A new person holding `roles`, and the principal a token of theirs stands for."""
    with db.session() as session:
        person = identity.create_person(session, operator, PersonCreate(name=name, roles=roles))
        _, secret = identity.issue_token(
            session, operator, person.id, TokenCreate(name="tests", scopes=list(scopes))
        )
        return person, identity.authenticate(session, secret)
