"""The compute book (on the whole demo: tests/audit/test_the_whole_demo.py): jobs agree with
the record per partition, level and state, and with the ledger; a job's charged hours changed in the
database behind the service's back are named; a job charged twice, charged without running,
or ending twice on a hand-made record is named."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from commonlab.audit.compute import ComputeBook
from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.replay import Replay
from tests.audit.audited import audit_test_facility, claims
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.compute.helpers import finish_a_job

# A facility of the test's own ------------------------------------------------------------------


@pytest.fixture
def finished_job(client, app, operator):
    job = finish_a_job(client, app, operator)
    assert job["charged_hours"] == "0.01", job
    return job


def test_a_facility_that_agrees_has_no_differences(client, app, facility, finished_job):
    findings = audit_test_facility(client, app, facility)
    assert claims(findings, "compute") == {}
    assert findings.checked["compute"] >= 9


def test_a_jobs_charged_hours_changed_in_the_database_are_named(
    client, app, facility, finished_job
):
    with facility.db.session() as session, session.begin():
        session.execute(text("UPDATE compute_jobs SET charged_hours = 0.5"))
    findings = audit_test_facility(client, app, facility)
    today = datetime.now(UTC).date()
    period = f"jobs {today}..{today.fromordinal(today.toordinal() + 1)}"
    assert claims(findings, "compute") == {
        f"{period} local/CL-1/succeeded charged_hours": (Decimal("0.01"), Decimal("0.50")),
    }


def test_a_jobs_state_changed_in_the_database_is_named(client, app, facility, finished_job):
    with facility.db.session() as session, session.begin():
        session.execute(text("UPDATE compute_jobs SET state = 'failed'"))
    found = claims(audit_test_facility(client, app, facility), "compute")
    assert {claim.rpartition(" ")[0].rpartition(" ")[2] for claim in found} == {
        "local/CL-1/succeeded",
        "local/CL-1/failed",
    }
    assert {claim.rpartition(" ")[2] for claim in found} == {
        "jobs",
        "ran",
        "reserved_hours",
        "charged_hours",
    }


# A record made by hand -----------------------------------------------------------------------


def _entry(index: int, type_: str, subject: str, **data) -> Entry:
    return Entry(
        index=index,
        type=type_,
        time=datetime(2026, 11, 2, 10, index, tzinfo=UTC),
        actor={"id": "system"},
        subject=subject,
        data=data,
        schema=2,
        policy_set=None,
    )


def _admitted(index: int, job: str) -> Entry:
    return _entry(
        index,
        "compute:job:admitted",
        job,
        project="p-1",
        allocation=1,
        partition="gpu",
        **{"class": "H100"},
        accelerators=4,
        level="CL-1",
        reserved_hours="8.00",
        inputs=[],
    )


def _record_findings(entries: list[Entry]) -> dict[str, tuple]:
    book = ComputeBook()
    Replay([book]).feed(entries)
    findings = Findings()
    book._check_record(findings)
    return claims(findings, "compute")


def _ran_and_settled(job: str, first: int, hours: str) -> list[Entry]:
    return [
        _admitted(first, job),
        _entry(first + 1, "compute:job:queued", job, project="p-1"),
        _entry(first + 2, "compute:job:running", job, project="p-1"),
        _entry(
            first + 3,
            "allocation:ledger:settled",
            "allocation/1",
            ledger=first,
            reservation=first - 1,
            hours=hours,
            job=job,
            **{"class": "H100"},
        ),
        _entry(
            first + 4,
            "compute:job:succeeded",
            job,
            project="p-1",
            charged_hours=hours,
            elapsed_seconds=600,
            exit_code=0,
        ),
    ]


def test_a_job_run_and_settled_once_is_in_order():
    assert _record_findings(_ran_and_settled("job/1", 0, "0.67")) == {}


def test_a_job_charged_twice_in_the_ledger_is_named():
    entries = _ran_and_settled("job/1", 0, "0.67")
    again = _entry(9, "allocation:ledger:settled", "allocation/1", hours="0.67", job="job/1")
    assert _record_findings([*entries, again]) == {
        "job/1 ledger lines closing its hold": (
            [("settled", Decimal("0.67"))],
            [("settled", Decimal("0.67")), ("settled", Decimal("0.67"))],
        )
    }


def test_a_job_charged_without_running_is_named():
    entries = [e for e in _ran_and_settled("job/1", 0, "0.67") if e.type != "compute:job:running"]
    assert _record_findings(entries) == {
        "job/1 charged without running": (Decimal(0), Decimal("0.67"))
    }


def test_a_job_that_ends_twice_or_is_charged_more_than_it_held_is_named():
    entries = _ran_and_settled("job/1", 0, "9.00")
    twice = _entry(9, "compute:job:failed", "job/1", project="p-1", charged_hours="1.00")
    found = _record_findings([*entries, twice])
    assert found == {
        "job/1 states after its end": ([], ["failed"]),
        "job/1 charged at most the 8.00 hours held": (True, False),
    }
