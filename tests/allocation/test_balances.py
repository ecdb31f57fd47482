"""Balances are the ledger's running sums: kept in each use case's transaction, equal to a
rebuild from the ledger, and filled from the ledger by migration 0009, on both databases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
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


def test_migration_0013_keeps_the_first_close_of_each_reservation_and_rebuilds_balances(
    client, operator, facility
):
    """A facility that the double-close race hit before 0013: the repeated closes go, the
    balances are the ledger's again (none negative), and then the database refuses any."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from commonlab.allocation.models import Charge

    _ledger_story(client, operator)
    kept = _balances(facility)
    command.downgrade(alembic_config(facility.db.engine), "0012")
    with facility.db.engine.begin() as conn:
        first = (
            conn.execute(text("SELECT * FROM allocation_ledger WHERE kind = 'release'"))
            .mappings()
            .one()
        )
        for _ in range(3):  # what three losing cancels wrote
            conn.execute(
                text(
                    "INSERT INTO allocation_ledger (allocation_id, kind, accelerator, hours, "
                    'reservation_id, job, "on", at) VALUES (:a, :k, :c, :h, :r, :j, :o, :t)'
                ),
                {
                    "a": first["allocation_id"],
                    "k": "release",
                    "c": first["accelerator"],
                    "h": first["hours"],
                    "r": first["reservation_id"],
                    "j": first["job"],
                    "o": first["on"],
                    "t": first["at"],
                },
            )
        conn.execute(text("UPDATE allocation_balances SET held = held - 15"))
    migrate(facility.db.engine)
    assert _balances(facility) == kept
    with facility.db.session() as db:
        closes = list(db.scalars(select(Charge).where(Charge.reservation_id.is_not(None))))
    assert sorted(c.id for c in closes if c.kind == "release") == [first["id"]]
    with facility.db.session() as db, pytest.raises(IntegrityError), db.begin():
        db.add(
            Charge(
                allocation_id=first["allocation_id"],
                kind="release",
                accelerator=first["accelerator"],
                hours=0,
                reservation_id=first["reservation_id"],
                job=first["job"],
                on=date.today(),
            )
        )


def test_migration_0013_gives_a_stranded_job_its_hold_back(client, operator, facility):
    """Before 0013 an operator could release the hold of a job still running, and the job's
    end then had nothing to close. The migration takes that release back; the job ends."""
    from sqlalchemy import text

    from commonlab.allocation.models import Charge

    project = award_project(client, operator)
    job = client.post(
        "/api/v1/jobs",
        json={
            "name": "stranded",
            "project": project.name,
            "command": "true",
            "accelerator": "cpu",
            "accelerators": 1,
            "time_limit_minutes": 5,
        },
        headers=project.pi_auth,
    ).json()
    kept = _balances(facility)
    command.downgrade(alembic_config(facility.db.engine), "0012")
    with facility.db.engine.begin() as conn:  # plain SQL: the models are 0013's
        hold, hours = conn.execute(
            text(
                "SELECT id, hours FROM allocation_ledger WHERE id = "
                "(SELECT reservation_id FROM compute_jobs WHERE id = :job)"
            ),
            {"job": job["id"]},
        ).one()
        conn.execute(  # what the operator's release wrote
            text(
                "INSERT INTO allocation_ledger (allocation_id, kind, accelerator, hours, "
                'reservation_id, job, "on", at) '
                "SELECT allocation_id, 'release', accelerator, 0, id, job, \"on\", at "
                "FROM allocation_ledger WHERE id = :id"
            ),
            {"id": hold},
        )
        conn.execute(text("UPDATE allocation_balances SET held = held - :h"), {"h": hours})
    migrate(facility.db.engine)
    assert _balances(facility) == kept
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    with facility.db.session() as db:
        closes = db.scalars(select(Charge.kind).where(Charge.reservation_id == hold)).all()
    assert closes == ["release"]
