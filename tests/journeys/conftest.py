"""The journeys of ../shared/JOURNEYS.md walked end to end on a demo facility served on a real
port (`commonlab up --demo` as a newcomer starts it): the CLI and the portal over HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from commonlab.demo import seed_demo
from commonlab.identity import service as identity
from commonlab.identity.models import Person
from commonlab.identity.schemas import TokenCreate
from commonlab.policy.principal import SYSTEM, Scope
from tests.cli.conftest import Served, cli_config, served  # noqa: F401  (fixtures)


@dataclass
class Demo:
    served: Served
    pi_token: str

    @property
    def url(self) -> str:
        return self.served.url

    def token_of(self, name: str, *scopes: Scope) -> str:
        """A token for one of the demo's people (as they would make one on the portal)."""
        with self.served.facility.db.session() as session:
            with session.begin():
                person_id = session.scalar(select(Person.id).where(Person.name == name))
            assert person_id is not None, f"no demo person {name!r}"
            _, token = identity.issue_token(
                session,
                SYSTEM,
                person_id,
                TokenCreate(name="journey", scopes=list(scopes or (Scope.READ, Scope.WRITE))),
            )
        return token


@pytest.fixture
def demo(served: Served) -> Demo:  # noqa: F811
    """`commonlab up --demo`: the seeded facility, served."""
    with served.facility.db.session() as session:
        pi_token = seed_demo(session)
    assert pi_token is not None
    return Demo(served=served, pi_token=pi_token)
