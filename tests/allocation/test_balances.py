"""Balances are the ledger's running sums: kept in each use case's transaction, equal to a
rebuild from the ledger, and filled from the ledger by migration 0009, on both databases."""

from __future__ import annotations

from datetime import date, timedelta

from alembic import command
from sqlalchemy import select

from commonlab.allocation.models import Balance
from commonlab.allocation.rules import quarter_index
from commonlab.allocation.service import rebuild_balances
from commonlab.migrations import alembic_config, migrate
from tests.compute.helpers import award_project


def _balances(facility) -> dict[tuple[int, str, int], tuple[str, str]]:
    with facility.db.session() as db:
        return {
            (b.allocation_id, b.accelerator, b.quarter): (str(b.settled), str(b.held))
            for b in db.scalars(select(Balance))
        }


def _ledger_story(client, operator):
    project = award_project(client, operator, budget={"cpu": "400", "H100": "100"})
    sub = client.post(
        f"/api/v1/allocations/{project.allocation_id}/sub-allocations",
        json={"title": "A sub-team", "budget": {"cpu": "40"}},
        headers=project.pi_auth,
    )
    assert sub.status_code == 201, sub.text
    holds = []
    for allocation, cls, hours in [
        (project.allocation_id, "cpu", "10"),
        (project.allocation_id, "cpu", "5"),
        (project.allocation_id, "H100", "7"),
        (sub.json()["id"], "cpu", "3"),
    ]:
        answer = client.post(
            f"/api/v1/allocations/{allocation}/reservations",
            json={"accelerator": cls, "hours": hours, "job": "story"},
            headers=operator,
        )
        assert answer.status_code == 201, answer.text
        holds.append(answer.json()["reservation"])
    client.post(f"/api/v1/ledger/{holds[0]}/settle", json={"hours": "8.5"}, headers=operator)
    client.post(f"/api/v1/ledger/{holds[1]}/release", headers=operator)
    client.post(f"/api/v1/ledger/{holds[3]}/settle", json={"hours": "2"}, headers=operator)
    return project, sub.json()


def test_balances_follow_the_ledger_and_equal_a_rebuild(client, operator, facility):
    project, sub = _ledger_story(client, operator)
    kept = _balances(facility)
    q = quarter_index(date.today(), date.today() + timedelta(days=365), date.today())
    parent = project.allocation_id
    assert kept[(parent, "cpu", q)] == ("10.50", "0.00")  # 8.5 settled + the sub-team's 2
    assert kept[(parent, "H100", q)] == ("0.00", "7.00")
    assert kept[(sub["id"], "cpu", q)] == ("2.00", "0.00")
    used = client.get(f"/api/v1/allocations/{parent}", headers=operator).json()
    assert used["used"] == {"cpu": "10.50"} and used["reserved"] == {"H100": "7.00"}
    with facility.db.session() as db, db.begin():
        rebuild_balances(db)
    assert _balances(facility) == kept


def test_migration_0009_fills_balances_from_the_ledger(client, operator, facility):
    _ledger_story(client, operator)
    kept = _balances(facility)
    config = alembic_config(facility.db.engine)
    command.downgrade(config, "0008")
    migrate(facility.db.engine)
    assert _balances(facility) == kept


def test_quarter_index_matches_the_tranches():
    from decimal import Decimal

    from commonlab.allocation.rules import quarters

    starts, ends = date(2027, 1, 31), date(2028, 3, 15)
    tranches = quarters(Decimal(100), starts, ends)
    day = starts
    while day < ends:
        expected = next(q.index for q in tranches if q.starts <= day < q.ends)
        assert quarter_index(starts, ends, day) == expected
        day += timedelta(days=1)
    assert quarter_index(starts, ends, ends) is None
    assert quarter_index(starts, ends, starts - timedelta(days=1)) is None
