"""A job's live metrics through the API, on SQLite and PostgreSQL: its submitter (or the job's
own token) posts them while it runs, a step sent again replaces its values, whoever may read
the job reads them back by page; every refusal (bad input, someone else's job, an ended job)
writes nothing, and none of it reaches the public record."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from commonlab.db import utcnow
from commonlab.identity import service as identity
from tests.compute.helpers import award_project
from tests.helpers import auth, problem, record_entries


@pytest.fixture
def project(client, operator):
    return award_project(client, operator)


@pytest.fixture
def job(client, project):
    """A job of the PI's that stays admitted (no controller runs here): not yet ended."""
    made = client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": project.name, "command": "sleep 60",
              "accelerator": "cpu", "time_limit_minutes": 5},
        headers=project.pi_auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()


def url(job_id):
    return f"/api/v1/jobs/{job_id}/metrics"


def post(client, job_id, headers, points):
    return client.post(url(job_id), json={"points": points}, headers=headers)


def read(client, job_id, headers, **params):
    response = client.get(url(job_id), params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def stored(client, job, project):
    """Every value the job holds, as its submitter reads them: (step, name) -> value."""
    page = read(client, job["id"], project.pi_auth)
    return {(p["step"], k): v for p in page["points"] for k, v in p.items()
            if k not in ("step", "time")}  # fmt: skip


def job_token(facility, job, project):
    """The token the controller hands the job at launch (the same one on every retry)."""
    with facility.db.session() as db, db.begin():
        return identity.job_token(
            db, job["submitter_id"], job_key=f"job/{job['id']}", project=project.name,
            level=1, expires_at=utcnow() + timedelta(hours=1), key=b"k" * 32,
        )  # fmt: skip


def test_the_submitter_posts_and_readers_page_through_them(client, app, project, job):
    points = [{"step": s, "time": 1_765_000_000 + s, "loss": 3.0 - s / 10, "learning_rate": 1e-3}
              for s in range(5)]  # fmt: skip
    made = post(client, job["id"], project.pi_auth, points)
    assert made.status_code == 200, made.text
    assert made.json() == {"job_id": job["id"], "points": 5, "values": 10}

    # A project member reads them, a page at a time, one metric or all.
    page = read(client, job["id"], project.member_auth, limit=2)
    assert page["names"] == ["learning_rate", "loss"]
    assert page["points"] == [
        {"step": 0, "time": 1_765_000_000.0, "learning_rate": 1e-3, "loss": 3.0},
        {"step": 1, "time": 1_765_000_001.0, "learning_rate": 1e-3, "loss": 2.9},
    ]
    assert page["next_after_step"] == 1
    rest = read(client, job["id"], project.member_auth, after_step=1)
    assert [p["step"] for p in rest["points"]] == [2, 3, 4] and rest["next_after_step"] is None
    loss = read(client, job["id"], project.member_auth, names="loss", after_step=3)
    assert loss["points"] == [{"step": 4, "time": 1_765_000_004.0, "loss": 2.6}]
    assert loss["latest"] == {"loss": {"step": 4, "value": 2.6, "time": 1_765_000_004.0}}
    both = read(client, job["id"], project.member_auth, names="loss,learning_rate", limit=1)
    assert set(both["latest"]) == {"loss", "learning_rate"}
    assert read(client, job["id"], project.pi_auth, names="grad_norm")["points"] == []

    # Private telemetry: nothing about it reaches the public record.
    types = [e["type"] for e in record_entries(client, app, subject=f"job/{job['id']}")]
    assert types == ["compute:job:admitted"]


def test_a_step_sent_again_replaces_its_values(client, project, job):
    first = [{"step": 0, "loss": 5.0}, {"step": 1, "loss": 4.0}]
    assert post(client, job["id"], project.pi_auth, first).status_code == 200
    # A resend (the client was not sure the first arrived) with a correction, and within one
    # batch the later point of a step wins.
    again = [{"step": 1, "loss": 3.5}, {"step": 2, "loss": 3.0}, {"step": 2, "loss": 2.5}]
    made = post(client, job["id"], project.pi_auth, again)
    assert made.status_code == 200 and made.json()["values"] == 2
    assert stored(client, job, project) == {(0, "loss"): 5.0, (1, "loss"): 3.5, (2, "loss"): 2.5}
    # null: no value at that step; the latest value is the last one that is a number.
    assert post(client, job["id"], project.pi_auth, [{"step": 3, "loss": None}]).status_code == 200
    page = read(client, job["id"], project.pi_auth)
    assert page["points"][-1]["loss"] is None
    assert page["latest"]["loss"]["step"] == 2


def test_the_jobs_own_token_posts_for_that_job_only(client, facility, project, job):
    token = auth(job_token(facility, job, project))
    assert post(client, job["id"], token, [{"step": 0, "loss": 1.0}]).status_code == 200
    other = client.post(
        "/api/v1/jobs",
        json={"project": project.name, "command": "true", "accelerator": "cpu"},
        headers=project.pi_auth,
    ).json()
    refused = post(client, other["id"], token, [{"step": 0, "loss": 1.0}])
    assert refused.status_code == 403
    assert "its own job" in problem(refused)["detail"]
    assert read(client, other["id"], project.pi_auth)["points"] == []


BAD = [
    ({"points": [{"step": 0, "loss": "NaN"}]}, "points.0.loss"),
    ({"points": [{"step": 0, "loss": "1.5"}]}, "points.0.loss"),
    ({"points": [{"step": 0, "loss": True}]}, "points.0.loss"),
    ({"points": [{"step": 0, "loss": [1]}]}, "points.0.loss"),
    ({"points": [{"step": -1, "loss": 1}]}, "points.0.step"),
    ({"points": [{"step": 1.5, "loss": 1}]}, "points.0.step"),
    ({"points": [{"step": 2**63, "loss": 1}]}, "points.0.step"),
    ({"points": [{"loss": 1}]}, "points.0.step"),
    ({"points": [{"step": 0, "time": -5, "loss": 1}]}, "points.0.time"),
    ({"points": [{"step": 0, "time": 1e300, "loss": 1}]}, "points.0.time"),
    ({"points": [{"step": 0}]}, "at least one metric"),
    ({"points": [{"step": 0, "bad name": 1}]}, "is not a metric name"),
    ({"points": [{"step": 0, "x" * 65: 1}]}, "is not a metric name"),
    ({"points": [{"step": 0, "../../etc": 1}]}, "is not a metric name"),
    ({"points": [{"step": 0, "<script>": 1}]}, "is not a metric name"),
    ({"points": [{"step": 0, **{f"m{i}": 1.0 for i in range(33)}}]}, "at most 32"),
    ({"points": [{"step": s, "loss": 1.0} for s in range(1001)]}, "points"),
    ({"points": []}, "points"),
    ({"points": [{"step": 0, "loss": 1}], "extra": 1}, "extra"),
    ({}, "points"),
]


@pytest.mark.parametrize(("body", "named"), BAD)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    client, project, job, body, named
):
    response = client.post(url(job["id"]), json=body, headers=project.pi_auth)
    assert response.status_code == 422, response.text
    assert named in problem(response)["detail"]
    assert stored(client, job, project) == {}


def test_non_finite_numbers_are_refused_however_they_arrive(client, project, job):
    # Python's JSON reader takes the non-standard NaN and Infinity literals: still refused.
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        response = client.post(
            url(job["id"]),
            content=f'{{"points": [{{"step": 0, "loss": {literal}}}]}}',
            headers={**project.pi_auth, "content-type": "application/json"},
        )
        assert response.status_code in (400, 422), (literal, response.text)
    assert stored(client, job, project) == {}


def test_a_job_keeps_a_bounded_number_of_names(client, project, job):
    for batch in range(2):
        points = [{"step": 0, **{f"m{batch}_{i}": 1.0 for i in range(32)}}]
        assert post(client, job["id"], project.pi_auth, points).status_code == 200
    refused = post(client, job["id"], project.pi_auth, [{"step": 1, "one_more": 1.0}])
    assert refused.status_code == 422 and "at most 64" in problem(refused)["detail"]
    # Names it already has still take new steps.
    assert post(client, job["id"], project.pi_auth, [{"step": 1, "m0_0": 2.0}]).status_code == 200


def test_someone_elses_or_an_unknown_job_writes_nothing(client, operator, project, job):
    point = [{"step": 0, "loss": 1.0}]
    member = post(client, job["id"], project.member_auth, point)  # a reader, not the submitter
    assert member.status_code == 403 and "submitter" in problem(member)["detail"]
    assert post(client, job["id"], project.outsider_auth, point).status_code == 403
    assert post(client, job["id"], operator, point).status_code == 403
    assert post(client, job["id"], {}, point).status_code in (401, 404)
    assert post(client, 999_999, project.pi_auth, point).status_code == 404
    assert stored(client, job, project) == {}
    # Reading: as the job's own routes answer, 404 to the public, 403 to a stranger.
    assert post(client, job["id"], project.pi_auth, point).status_code == 200
    assert client.get(url(job["id"])).status_code == 404
    assert client.get(url(job["id"]), headers=project.outsider_auth).status_code == 403
    assert client.get(url(999_999), headers=project.pi_auth).status_code == 404
    assert client.get(url(job["id"]), headers=operator).status_code == 200  # oversight reads


def test_a_read_only_token_may_read_but_not_post(client, operator, project, job):
    from tests.helpers import token_for

    reader = auth(token_for(client, operator, project.pi["id"], scopes=("read",)))
    assert post(client, job["id"], reader, [{"step": 0, "loss": 1.0}]).status_code == 403
    assert read(client, job["id"], reader)["points"] == []


def test_an_ended_job_takes_no_more_metrics(client, project, job):
    assert post(client, job["id"], project.pi_auth, [{"step": 0, "loss": 1.0}]).status_code == 200
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=project.pi_auth)
    assert cancelled.json()["state"] == "cancelled"
    late = post(client, job["id"], project.pi_auth, [{"step": 1, "loss": 0.5}])
    assert late.status_code == 409
    assert "has ended (cancelled)" in problem(late)["detail"]
    assert stored(client, job, project) == {(0, "loss"): 1.0}  # still readable, unchanged


def test_bad_queries_are_refused(client, project, job):
    for params in ({"names": "bad name"}, {"after_step": -2}, {"limit": 0}, {"limit": 1001},
                   {"names": ",".join(f"m{i}" for i in range(33))}):  # fmt: skip
        response = client.get(url(job["id"]), params=params, headers=project.pi_auth)
        assert response.status_code == 422, (params, response.text)
        assert json.loads(response.text)["detail"]
