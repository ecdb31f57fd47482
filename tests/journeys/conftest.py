"""The journeys of ../shared/JOURNEYS.md walked end to end on a demo facility served on a real
port (`commonlab up --demo` as a newcomer starts it): the CLI and the portal over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from commonlab.demo import seed_demo
from commonlab.identity import service as identity
from commonlab.identity.models import Person
from commonlab.identity.schemas import TokenCreate
from commonlab.policy.principal import SYSTEM, Scope
from tests.cli.conftest import Served, a_new_facility_served, cli_config, served  # noqa: F401  (fixtures)


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
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`commonlab up --demo`: the facility seeded, then served."""
    with a_new_facility_served(tmp_path / "home", seed_demo) as (served, pi_token):  # noqa: F811
        assert pi_token is not None
        yield Demo(served=served, pi_token=pi_token)
