"""Finding 4 of issue 13, replayed: a reservation closes once.

Ten concurrent cancels of a job not yet handed over wrote several releases of one
reservation (held went negative, more jobs were admitted than the budget held); an
operator's release of a running job's hold wedged the job. Here many real HTTP clients,
released together by a barrier against a live server, try again on SQLite and on
PostgreSQL; a state machine drives the ledger through every order of holds and closes; and
a job's charge is pinned to its reservation at the boundary.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from commonlab.allocation import service as allocation
from commonlab.allocation.models import Balance, Charge
from commonlab.compute import rules as compute_rules
from commonlab.compute import service as compute
from commonlab.compute.executors.base import Observed
from commonlab.compute.models import Job, JobTransition
from commonlab.compute.rules import JobState
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput
from commonlab.identity.models import ApiToken
from commonlab.identity.service import authenticate
from commonlab.policy.principal import SYSTEM
from commonlab.record.models import Entry
from tests.compute.helpers import award_project, run_until
from tests.helpers import problem

CLIENTS = 10


# A live server over the test's own database (both databases) -----------------------------------


@dataclass
class Live:
    url: str


@pytest.fixture
def live(app: Any, client: Any) -> Iterator[Live]:
    """The test's app served by uvicorn on a real socket: concurrent clients reach it through
    uvicorn's thread pool, each request with its own session, as in production. (The job
    controller does not run: a job stays as the test leaves it.)"""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def all_at_once(live: Live, headers: dict[str, str], posts: list[tuple[str, dict[str, Any]]]):
    """POST each (path, body) from a client and thread of its own, all released together."""
    barrier = threading.Barrier(len(posts))
    answers: list[Any] = [None] * len(posts)

    def one(i: int) -> None:
        path, body = posts[i]
        with httpx.Client(base_url=live.url, headers=headers, timeout=60) as http:
            barrier.wait()
            try:
                answers[i] = http.post(path, **({"json": body} if body else {}))
            except httpx.HTTPError as exc:  # reported by the assertion below
                answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(posts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers


# What the database holds -----------------------------------------------------------------------


def closes_of(facility, reservation_id: int) -> list[Charge]:
    with facility.db.session() as db:
        return list(db.scalars(select(Charge).where(Charge.reservation_id == reservation_id)))


def entries(facility, type_: str, subject: str | None = None) -> int:
    query = select(func.count()).select_from(Entry).where(Entry.type == type_)
    if subject is not None:
        query = query.where(Entry.subject == subject)
    with facility.db.session() as db:
        return db.scalar(query) or 0


def balances(facility) -> dict[tuple[int, str, int], tuple[Decimal, Decimal]]:
    with facility.db.session() as db:
        return {
            (b.allocation_id, b.accelerator, b.quarter): (Decimal(b.settled), Decimal(b.held))
            for b in db.scalars(select(Balance))
        }


def rebuilt(facility) -> dict[tuple[int, str, int], tuple[Decimal, Decimal]]:
    """The balances recomputed from the ledger alone, rolled back: nothing is changed."""
    with facility.db.session() as db:
        db.begin()
        try:
            allocation.rebuild_balances(db)
            return {
                (b.allocation_id, b.accelerator, b.quarter): (Decimal(b.settled), Decimal(b.held))
                for b in db.scalars(select(Balance))
            }
        finally:
            db.rollback()


def the_job(facility, job_id: int) -> Job:
    with facility.db.session() as db:
        return db.get_one(Job, job_id)


def submit(client, project, **overrides) -> dict[str, Any]:
    body = {
        "name": "race",
        "project": project.name,
        "command": "sleep 30",
        "accelerator": "cpu",
        "accelerators": 1,
        "time_limit_minutes": 5,
        **overrides,
    }
    made = client.post("/api/v1/jobs", json=body, headers=project.pi_auth)
    assert made.status_code == 201, made.text
    return made.json()


# The attacks -----------------------------------------------------------------------------------


def test_ten_concurrent_cancels_close_the_reservation_once(client, operator, facility, live):
    project = award_project(client, operator)
    job = submit(client, project)
    reservation = the_job(facility, job["id"]).reservation_id
    assert reservation is not None

    answers = all_at_once(
        live, project.pi_auth, [(f"/api/v1/jobs/{job['id']}/cancel", {})] * CLIENTS
    )

    assert Counter(a.status_code for a in answers) == {200: 1, 409: CLIENTS - 1}, [
        a.text for a in answers
    ]
    for lost in (a for a in answers if a.status_code == 409):
        assert problem(lost)["detail"]  # a reason, as problem+json
    [close] = closes_of(facility, reservation)
    assert close.kind == "release" and Decimal(close.hours) == 0
    subject = f"job/{job['id']}"
    assert entries(facility, "compute:job:cancelled", subject) == 1
    assert entries(facility, "allocation:ledger:released") == 1
    with facility.db.session() as db:
        states = db.scalars(select(JobTransition.state).where(JobTransition.job_id == job["id"]))
        assert Counter(states) == {"admitted": 1, "cancelled": 1}
    kept = balances(facility)
    assert all(held >= 0 and settled >= 0 for settled, held in kept.values())
    assert kept == rebuilt(facility)
    # Nothing held, nothing used: the budget is whole again, and not more than whole.
    shown = client.get(f"/api/v1/allocations/{project.allocation_id}", headers=operator).json()
    assert shown["reserved"] == {} and shown["used"] == {}


@pytest.mark.parametrize("round_", range(3))  # each race is a fresh chance to interleave
def test_concurrent_closes_of_one_reservation_leave_exactly_one(
    client, operator, facility, live, round_
):
    """The database, not a read before the write, decides: many settles and releases of one
    reservation held by hand, at once."""
    project = award_project(client, operator, budget={"cpu": "100"})
    held = client.post(
        f"/api/v1/allocations/{project.allocation_id}/reservations",
        json={"accelerator": "cpu", "hours": "10", "job": "by hand"},
        headers=operator,
    ).json()["reservation"]
    [(key, before)] = balances(facility).items()
    assert before == (Decimal(0), Decimal(10))
    settle = (f"/api/v1/ledger/{held}/settle", {"hours": "6"})
    release = (f"/api/v1/ledger/{held}/release", {})

    answers = all_at_once(live, operator, [settle, release] * (CLIENTS // 2))

    assert Counter(a.status_code for a in answers) == {200: 1, 409: CLIENTS - 1}, [
        a.text for a in answers
    ]
    [close] = closes_of(facility, held)
    closed = entries(facility, "allocation:ledger:settled") + entries(
        facility, "allocation:ledger:released"
    )
    assert closed == 1
    kept = balances(facility)
    assert kept == rebuilt(facility)
    assert kept[key] == (Decimal(6) if close.kind == "settle" else Decimal(0), Decimal(0))


def test_the_database_itself_refuses_a_second_closing_line(client, operator, facility):
    """Whatever code writes it: the unique closing line is the database's rule."""
    project = award_project(client, operator, budget={"cpu": "100"})
    held = client.post(
        f"/api/v1/allocations/{project.allocation_id}/reservations",
        json={"accelerator": "cpu", "hours": "10", "job": "by hand"},
        headers=operator,
    ).json()["reservation"]
    assert client.post(f"/api/v1/ledger/{held}/release", headers=operator).status_code == 200
    with facility.db.session() as db, pytest.raises(IntegrityError), db.begin():
        line = db.get_one(Charge, held)
        db.add(
            Charge(
                allocation_id=line.allocation_id,
                kind="release",
                accelerator="cpu",
                hours=0,
                reservation_id=held,
                job=line.job,
                on=line.on,
            )
        )
    assert len(closes_of(facility, held)) == 1


def test_an_operator_cannot_release_a_running_jobs_hold_and_the_job_still_ends(
    client, app, operator, facility
):
    project = award_project(client, operator)
    job = submit(client, project)
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"running"})
    reservation = the_job(facility, job["id"]).reservation_id
    ledger_before, kept = closes_of(facility, reservation), balances(facility)
    released_before = entries(facility, "allocation:ledger:released")

    for attempt in (
        client.post(f"/api/v1/ledger/{reservation}/release", headers=operator),
        client.post(f"/api/v1/ledger/{reservation}/settle", json={"hours": "0"}, headers=operator),
    ):
        assert attempt.status_code == 409, attempt.text
        assert f"job/{job['id']}" in problem(attempt)["detail"]
        assert "cancel the job" in problem(attempt)["detail"]
    assert closes_of(facility, reservation) == ledger_before == []
    assert balances(facility) == kept
    assert entries(facility, "allocation:ledger:released") == released_before

    # The job's own lifecycle still ends it cleanly: stopped, charged once, token revoked.
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=operator)
    assert cancelled.status_code == 200, cancelled.text
    done = run_until(app.state.jobs, client, job["id"], project.pi_auth, {"cancelled"})
    [close] = closes_of(facility, reservation)
    assert close.kind == "settle" and Decimal(done["charged_hours"]) == Decimal(close.hours)
    with facility.db.session() as db:
        token = db.scalar(select(ApiToken).where(ApiToken.name == f"job/{job['id']}"))
        assert token is not None and token.revoked_at is not None
    app.state.jobs.tick()  # and the controller has nothing left to trip on
    assert app.state.jobs.last_error == ""


def test_a_second_cancel_of_a_handed_over_job_is_refused_and_writes_nothing(
    client, app, operator, facility
):
    project = award_project(client, operator)
    job = submit(client, project)
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"running"})
    first = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert first.status_code == 200 and "cancel requested" in first.json()["reason"]
    asked = entries(facility, "compute:job:cancel_requested", f"job/{job['id']}")
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert again.status_code == 409 and "already requested" in problem(again)["detail"]
    assert entries(facility, "compute:job:cancel_requested", f"job/{job['id']}") == asked == 1
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"cancelled"})


def test_a_controller_holding_a_stale_read_cannot_move_a_job_a_cancel_ended(
    client, operator, facility
):
    """The job's row moves by compare-and-set: a transition read before a cancel committed
    finds nothing to move and writes nothing (no transition, no entry, no second close)."""
    project = award_project(client, operator)
    job = submit(client, project)
    with facility.db.session() as stale, stale.begin():
        row = stale.get_one(Job, job["id"])
        assert row.state == "admitted"
        cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
        assert cancelled.status_code == 200, cancelled.text
        assert compute.move_job(stale, row, Observed(state=JobState.QUEUED)) is False
        assert compute.move_job(stale, row, Observed(state=JobState.FAILED)) is False
    assert the_job(facility, job["id"]).state == "cancelled"
    with facility.db.session() as db:
        states = list(
            db.scalars(select(JobTransition.state).where(JobTransition.job_id == job["id"]))
        )
    assert states == ["admitted", "cancelled"]
    assert entries(facility, "compute:job:queued", f"job/{job['id']}") == 0
    assert len(closes_of(facility, the_job(facility, job["id"]).reservation_id)) == 1


# A job's charge is capped at its reservation ---------------------------------------------------


@pytest.mark.parametrize(
    ("accelerators", "seconds", "reserved", "charged"),
    [
        (1, 288, "0.09", "0.08"),  # 8 units: under the hold
        (1, 324, "0.09", "0.09"),  # exactly 9 units: the whole hold
        (1, 325, "0.09", "0.09"),  # 10 units by the clock, capped at the 9 held
        (1, 100_000, "0.09", "0.09"),  # far past the time limit: still the hold
        (2, 36, "0.01", "0.01"),  # 2 units, 1 held
        (1, 1, "5", "0.01"),  # a job that ran at all pays one unit
        (1, 0, "5", "0"),
    ],
)
def test_a_charge_never_exceeds_the_reservation(accelerators, seconds, reserved, charged):
    assert compute_rules.charge_hours(accelerators, seconds, Decimal(reserved)) == Decimal(charged)


def test_a_job_that_overran_is_settled_at_exactly_its_hold(client, operator, facility):
    """Through the service, as the controller applies what the executor reported."""
    project = award_project(client, operator)
    job = submit(client, project)  # 1 cpu x 5 minutes holds 0.09 h
    with facility.db.session() as db, db.begin():
        row = db.get_one(Job, job["id"])
        compute.move_job(db, row, Observed(state=JobState.QUEUED))
        compute.move_job(
            db,
            row,
            Observed(
                state=JobState.SUCCEEDED,
                exit_code=0,
                elapsed_seconds=3600,  # twelve times its limit by the executor's clock
                accelerators=1,
                started_at=utcnow() - timedelta(hours=1),
                ended_at=utcnow(),
            ),
        )
    ended = the_job(facility, job["id"])
    [close] = closes_of(facility, ended.reservation_id)
    assert close.kind == "settle" and Decimal(close.hours) == Decimal("0.09")
    assert Decimal(ended.charged_hours) == Decimal("0.09") == Decimal(job["reserved_hours"])


def test_settling_more_than_was_held_is_refused_at_the_boundary(client, operator, facility):
    project = award_project(client, operator, budget={"cpu": "100"})

    def hold() -> int:
        return client.post(
            f"/api/v1/allocations/{project.allocation_id}/reservations",
            json={"accelerator": "cpu", "hours": "5", "job": "by hand"},
            headers=operator,
        ).json()["reservation"]

    over, exact = hold(), hold()
    kept = balances(facility)
    refused = client.post(f"/api/v1/ledger/{over}/settle", json={"hours": "5.01"}, headers=operator)
    assert refused.status_code == 422 and "more than the 5.00" in problem(refused)["detail"]
    assert closes_of(facility, over) == [] and balances(facility) == kept
    settled = client.post(f"/api/v1/ledger/{exact}/settle", json={"hours": "5"}, headers=operator)
    assert settled.status_code == 200, settled.text
    [close] = closes_of(facility, exact)
    assert Decimal(close.hours) == Decimal(5)


# The ledger as a state machine -----------------------------------------------------------------


class Ledger(RuleBasedStateMachine):
    """Holds by hand and by jobs, settles, releases, closes again, and an operator's release
    of a job's hold, in any order: the invariants must hold after every step."""

    holds = Bundle("holds")

    def __init__(self, facility, operator_token: str, allocation_id: int) -> None:
        super().__init__()
        self.db = facility.db
        self.facility = facility
        with self.db.session() as db:
            self.operator = authenticate(db, operator_token)
        self.allocation_id = allocation_id
        self.open: dict[int, tuple[Decimal, str | None]] = {}  # id → (hours, job key or None)
        self.closed: set[int] = set()
        self.jobs = 0

    def _as_operator(self, use_case, held: int, *args: Any) -> None:
        with self.db.session() as db:
            use_case(db, self.operator, held, *args)

    def teardown(self) -> None:
        """Close what this run left open, so the next run starts with nothing held."""
        for held, (_, key) in self.open.items():
            with self.db.session() as db, db.begin():
                allocation.close_reservation(db, SYSTEM, held, None, job=key)

    def _ledger_lines(self) -> int:
        with self.db.session() as db:
            return db.scalar(select(func.count()).select_from(Charge)) or 0

    def _refused_and_unchanged(self, attempt, error: type[Exception]) -> None:
        lines, kept = self._ledger_lines(), balances(self.facility)
        with pytest.raises(error):
            attempt()
        assert self._ledger_lines() == lines and balances(self.facility) == kept

    @rule(target=holds, hours=st.decimals("0.01", "50", places=2), by_job=st.booleans())
    def hold(self, hours: Decimal, by_job: bool) -> int:
        self.jobs += 1
        key = f"job/machine-{self.jobs}" if by_job else None
        with self.db.session() as db, db.begin():
            line = allocation.hold_hours(
                db,
                SYSTEM if by_job else self.operator,
                self.allocation_id,
                accelerator="cpu",
                hours=hours,
                job=key or "by hand",
                for_job=by_job,
            )
        self.open[line.id] = (hours, key)
        return line.id

    @rule(held=consumes(holds), fraction=st.fractions(0, 1))
    def settle(self, held: int, fraction) -> None:
        hours, key = self.open.pop(held)
        used = (hours * Decimal(fraction.numerator) / Decimal(fraction.denominator)).quantize(
            Decimal("0.01"), rounding="ROUND_DOWN"
        )
        with self.db.session() as db, db.begin():
            if key is None:
                allocation.close_reservation(db, self.operator, held, used)
            else:
                allocation.close_reservation(db, SYSTEM, held, used, job=key)
        self.closed.add(held)

    @rule(held=consumes(holds))
    def release(self, held: int) -> None:
        _, key = self.open.pop(held)
        if key is None:
            self._as_operator(allocation.release, held)
        else:
            with self.db.session() as db, db.begin():
                allocation.close_reservation(db, SYSTEM, held, None, job=key)
        self.closed.add(held)

    @rule(held=holds)
    def close_again(self, held: int) -> None:
        """Any close of a closed reservation is refused and changes nothing."""
        if held not in self.closed:
            return
        self._refused_and_unchanged(lambda: self._as_operator(allocation.release, held), Conflict)
        self._refused_and_unchanged(
            lambda: self._as_operator(allocation.settle, held, Decimal(0)), Conflict
        )

    @rule(held=holds)
    def operator_releases_a_jobs_hold(self, held: int) -> None:
        if held not in self.open or self.open[held][1] is None:
            return
        self._refused_and_unchanged(lambda: self._as_operator(allocation.release, held), Conflict)

    @rule(held=holds, extra=st.decimals("0.01", "10", places=2))
    def settle_more_than_held(self, held: int, extra: Decimal) -> None:
        if held not in self.open:
            return
        hours, key = self.open[held]
        with self.db.session() as db:

            def attempt() -> None:
                with db.begin():
                    allocation.close_reservation(db, SYSTEM, held, hours + extra, job=key)

            self._refused_and_unchanged(attempt, InvalidInput)

    @invariant()
    def balances_are_the_ledger(self) -> None:
        kept = balances(self.facility)
        assert all(held >= 0 and settled >= 0 for settled, held in kept.values())
        assert kept == rebuilt(self.facility)

    @invariant()
    def each_reservation_closes_at_most_once(self) -> None:
        with self.db.session() as db:
            lines = list(db.scalars(select(Charge)))
        by_id = {line.id: line for line in lines}
        closes = Counter(line.reservation_id for line in lines if line.reservation_id)
        assert all(n == 1 for n in closes.values())
        assert self.closed <= set(closes) and not set(closes) & set(self.open)
        for line in lines:
            if line.reservation_id is not None:  # settled ≤ what was held
                assert Decimal(line.hours) <= Decimal(by_id[line.reservation_id].hours)

    @invariant()
    def held_is_what_is_open(self) -> None:
        with self.db.session() as db:
            held = db.scalar(
                select(func.coalesce(func.sum(Balance.held), 0)).where(
                    Balance.allocation_id == self.allocation_id
                )
            )
        assert Decimal(held) == sum((h for h, _ in self.open.values()), Decimal(0))


def test_the_ledger_state_machine(client, operator, operator_token, facility):
    project = award_project(client, operator, budget={"cpu": "40000"})
    run_state_machine_as_test(
        lambda: Ledger(facility, operator_token, project.allocation_id),
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
