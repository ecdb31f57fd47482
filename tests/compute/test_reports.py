"""The public jobs report (GET /api/v1/reports/jobs): per partition, level and state, the jobs
admitted over a period, how many ran and their hours, in JSON and CSV, without a token; a
period that is not one is refused with a message naming what to fix, never a 500."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from tests.compute.helpers import finish_a_job
from tests.helpers import problem

TODAY = date.today()
TOMORROW = TODAY + timedelta(days=1)


def test_the_report_counts_a_finished_job_for_anyone(client, app, operator):
    finish_a_job(client, app, operator)
    period = {"start": TODAY.isoformat(), "end": TOMORROW.isoformat()}

    report = client.get("/api/v1/reports/jobs", params=period)  # no token
    assert report.status_code == 200, report.text
    row = {
        "partition": "local",
        "level": "CL-1",
        "state": "succeeded",
        "jobs": 1,
        "ran": 1,
        "reserved_hours": "0.09",
        "charged_hours": "0.01",
    }
    assert report.json() == {**period, "rows": [row]}

    exported = client.get("/api/v1/reports/jobs", params={**period, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(exported.text))) == [{k: str(v) for k, v in row.items()}]
    # A period before the job counts nothing.
    earlier = {"start": (TODAY - timedelta(days=7)).isoformat(), "end": TODAY.isoformat()}
    assert client.get("/api/v1/reports/jobs", params=earlier).json()["rows"] == []


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("yesterday", "2026-01-01", "start"),
        ("2026-13-01", "2026-12-01", "start"),
        ("2026-02-30", "2026-03-01", "start"),
        ("2026-01-01", "10000-01-01", "end"),
        ("2026-01-01", "-1", "end"),
        ("2026-01-01", "", "end"),
        ("2026-02-01", "2026-01-01", "must be after start"),
        ("2026-02-01", "2026-02-01", "must be after start"),
    ],
)
def test_a_period_that_is_not_one_is_refused(client, start, end, named):
    response = client.get("/api/v1/reports/jobs", params={"start": start, "end": end})
    assert response.status_code == 422, response.text
    assert named in problem(response)["detail"]


def test_the_period_is_required(client):
    response = client.get("/api/v1/reports/jobs", params={"start": "2026-01-01"})
    assert response.status_code == 422
    assert "end" in problem(response)["detail"]
