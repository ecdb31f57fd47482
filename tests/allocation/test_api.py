"""A call's whole cycle through the API, on SQLite and PostgreSQL: open, submit, review with
a conflict excluded, reply, rank, decide, council approval above the threshold, sub-allocate,
charge, and report member-state shares; and every refusal changing nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.helpers import (
    close_when_due,
    new_institutions,
    person_with_token,
    problem,
    record_entries,
)

TODAY = date.today()


def iso(days=0, minutes=0):
    return (datetime.now(UTC) + timedelta(days=days, minutes=minutes)).isoformat()


@pytest.fixture
def world(client, operator):
    inst = new_institutions(client, operator)
    client.post(
        "/api/v1/members",
        json={
            "members": [
                {"code": "IT", "name": "Italy", "contribution": "25"},
                {"code": "FR", "name": "France", "contribution": "25"},
                {"code": "DE", "name": "Germany", "contribution": "25"},
                {"code": "ES", "name": "Spain", "contribution": "25"},
            ]
        },
        headers=operator,
    )
    pi, pi_auth = person_with_token(
        client, operator, "Wanjiru Kamau", ["pi", "researcher"], inst["KE"]["id"]
    )
    student, _ = person_with_token(client, operator, "Otieno", ["researcher"], inst["KE"]["id"])
    r1, r1_auth = person_with_token(
        client, operator, "Reviewer Rome", ["reviewer"], inst["IT"]["id"]
    )
    r2, r2_auth = person_with_token(
        client, operator, "Reviewer Paris", ["reviewer"], inst["FR"]["id"]
    )
    r3, r3_auth = person_with_token(
        client, operator, "Reviewer Nairobi", ["reviewer"], inst["KE"]["id"]
    )
    call = client.post(
        "/api/v1/calls",
        json={
            "title": "Multilingual speech models",
            "pool": "open_calls",
            "budget": {"H100": "100000"},
            "opens_at": iso(minutes=-5),
            "closes_at": iso(days=30),
            "rubric": [
                {"criterion": "excellence", "weight": 2},
                {"criterion": "openness", "weight": 1},
            ],
        },
        headers=operator,
    )
    assert call.status_code == 201, call.text
    return {
        "inst": inst,
        "pi": (pi, pi_auth),
        "student": student,
        "reviewers": [(r1, r1_auth), (r2, r2_auth), (r3, r3_auth)],
        "call": call.json(),
    }


def proposal_body(world, **overrides):
    return {
        "call_id": world["call"]["id"],
        "institution_id": world["inst"]["KE"]["id"],
        "title": "Speech models for Swahili",
        "abstract": "Open ASR for East African languages.",
        "team": [world["student"]["id"]],
        "requested": {"H100": "60000"},
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=365)).isoformat(),
        "release_plan": {"weights": True, "data": True, "code": True, "licence": "Apache-2.0"},
        **overrides,
    }


def council_seats(client, operator):
    seats = {}
    for code in ("IT", "FR", "DE", "ES"):
        row, headers = person_with_token(client, operator, f"Delegate {code}", ["delegate"])
        client.post(
            f"/api/v1/members/{code}/delegates", json={"person_id": row["id"]}, headers=operator
        )
        seats[code] = headers
    return seats


def test_the_whole_cycle(client, app, facility, operator, world):
    _, pi_auth = world["pi"]
    submitted = client.post("/api/v1/proposals", json=proposal_body(world), headers=pi_auth)
    assert submitted.status_code == 201, submitted.text
    pid = submitted.json()["id"]
    listed = {
        r["name"]: r
        for r in client.get(f"/api/v1/proposals/{pid}/reviewers", headers=operator).json()
    }
    assert listed["Reviewer Nairobi"]["conflicts"] == ["same institution as the PI"]
    assert listed["Reviewer Rome"]["eligible"]
    (r1, r1_auth), (r2, r2_auth), (r3, _) = world["reviewers"]
    excluded = client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": r3["id"]}, headers=operator
    )
    assert excluded.status_code == 409 and "same institution" in problem(excluded)["detail"]
    for reviewer in (r1, r2):
        assert (
            client.post(
                f"/api/v1/proposals/{pid}/reviewers",
                json={"reviewer_id": reviewer["id"]},
                headers=operator,
            ).status_code
            == 201
        )
    assert (
        client.post(
            f"/api/v1/proposals/{pid}/review",
            json={"scores": {"excellence": 5, "openness": 4}},
            headers=r1_auth,
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"/api/v1/proposals/{pid}/replies",
            json={"text": "We will publish the data."},
            headers=pi_auth,
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/proposals/{pid}/review",
            json={"scores": {"excellence": 4, "openness": 5}, "comment": "ok"},
            headers=r2_auth,
        ).status_code
        == 200
    )
    ranking = client.get(f"/api/v1/calls/{world['call']['id']}/ranking", headers=operator).json()
    assert ranking[0] == {
        "rank": 1,
        "proposal": pid,
        "title": "Speech models for Swahili",
        "score": "4.50",
    }
    decided = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    ).json()
    allocation = decided["allocation"]
    assert allocation["status"] == "awaiting_council"  # 60,000 h is above the 50,000 h threshold
    refused = client.post(
        f"/api/v1/allocations/{allocation['id']}/reservations",
        json={"accelerator": "H100", "hours": "1", "job": "j0"},
        headers=operator,
    )
    assert refused.status_code == 409

    seats = council_seats(client, operator)
    motion = client.post(
        "/api/v1/motions",
        json={
            "kind": "approve_allocation",
            "title": "Approve Swahili ASR",
            "payload": {"allocation_id": allocation["id"]},
            "closes_at": iso(minutes=3),
        },
        headers=seats["IT"],
    ).json()
    for code in ("IT", "FR", "DE"):
        client.post(
            f"/api/v1/motions/{motion['id']}/votes", json={"choice": "yes"}, headers=seats[code]
        )
    close_when_due(facility.db, motion["id"])
    assert client.get(f"/api/v1/allocations/{allocation['id']}").json()["status"] == "active"
    assert client.get("/api/v1/me", headers=pi_auth).json()["projects"] == [allocation["project"]]
    newcomer, newcomer_auth = person_with_token(client, operator, "Second student", ["researcher"])
    members_url = f"/api/v1/allocations/{allocation['id']}/members"
    add = {"person_id": newcomer["id"]}
    assert client.post(members_url, json=add, headers=operator).status_code == 403
    assert client.post(members_url, json=add, headers=pi_auth).status_code == 201
    assert client.post(members_url, json=add, headers=pi_auth).status_code == 409
    mine = client.get("/api/v1/me", headers=newcomer_auth).json()["projects"]
    assert mine == [allocation["project"]]

    sub = client.post(
        f"/api/v1/allocations/{allocation['id']}/sub-allocations",
        json={"title": "Otieno's runs", "budget": {"H100": "5000"}},
        headers=pi_auth,
    )
    assert sub.status_code == 201, sub.text
    too_big = client.post(
        f"/api/v1/allocations/{allocation['id']}/sub-allocations",
        json={"title": "x", "budget": {"H100": "55001"}},
        headers=pi_auth,
    )
    assert too_big.status_code == 422 and "only 55000" in problem(too_big)["detail"]

    held = client.post(
        f"/api/v1/allocations/{sub.json()['id']}/reservations",
        json={"accelerator": "H100", "hours": "100", "job": "job-1"},
        headers=operator,
    ).json()
    assert (
        client.post(
            f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "80"}, headers=operator
        ).status_code
        == 200
    )
    again = client.post(
        f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "80"}, headers=operator
    )
    assert again.status_code == 409 and "exactly once" in problem(again)["detail"]
    parent = client.get(f"/api/v1/allocations/{allocation['id']}").json()
    assert parent["used"] == {"H100": "80.00"} and parent["reserved"] == {}

    types = [e["type"] for e in record_entries(client, app, type="allocation")]
    for expected in [
        "allocation:call:opened",
        "allocation:proposal:submitted",
        "allocation:review:assigned",
        "allocation:review:submitted",
        "allocation:reply:given",
        "allocation:proposal:decided",
        "allocation:allocation:granted",
        "allocation:allocation:approved",
        "allocation:allocation:sub_allocated",
        "allocation:ledger:reserved",
        "allocation:ledger:settled",
    ]:
        assert expected in types
    [approved] = record_entries(client, app, type="allocation:allocation:approved")
    assert approved["actor"] == {"id": f"motion/{approved['data']['motion']}"}  # its authority
    granted = record_entries(client, app, type="allocation:allocation:granted")[0]
    assert len(granted["data"]["members"]) == 2  # the PI and the student named on the proposal
    submitted_entry = record_entries(client, app, type="allocation:proposal:submitted")[0]
    assert "Swahili" not in str(submitted_entry)  # confidential until decided


def test_overdraw_is_refused_and_shares_are_reported(client, app, operator, world):
    # A proposal's institution is its PI's: an Italian PI makes an Italian allocation.
    _, pi_auth = person_with_token(
        client, operator, "Luca Ferri", ["pi"], world["inst"]["IT"]["id"]
    )
    small = proposal_body(
        world, requested={"H100": "4000"}, institution_id=world["inst"]["IT"]["id"]
    )
    pid = client.post("/api/v1/proposals", json=small, headers=pi_auth).json()["id"]
    (r1, r1_auth) = world["reviewers"][1]
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": r1["id"]}, headers=operator
    )
    client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 3, "openness": 3}},
        headers=r1_auth,
    )
    allocation = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    ).json()["allocation"]
    assert allocation["status"] == "active" and allocation["country"] == "IT"
    quarter = client.post(
        f"/api/v1/allocations/{allocation['id']}/reservations",
        json={"accelerator": "H100", "hours": "1500", "job": "big"},
        headers=operator,
    )
    assert quarter.status_code == 409 and "left this quarter" in problem(quarter)["detail"]
    ok = client.post(
        f"/api/v1/allocations/{allocation['id']}/reservations",
        json={"accelerator": "H100", "hours": "900", "job": "fits"},
        headers=operator,
    ).json()
    client.post(
        f"/api/v1/ledger/{ok['reservation']}/settle", json={"hours": "900"}, headers=operator
    )
    report = client.get(
        "/api/v1/reports/shares",
        params={
            "start": (TODAY - timedelta(days=1)).isoformat(),
            "end": (TODAY + timedelta(days=1)).isoformat(),
        },
    ).json()
    by_code = {s["code"]: s for s in report["states"]}
    assert by_code["IT"]["delivered_percent"] == "100.00" and by_code["IT"]["outside_band"]
    assert by_code["FR"]["delivered_hours"] == "0" and by_code["FR"]["entitled_percent"] == "25"
    csv_text = client.get(
        "/api/v1/reports/shares",
        params={
            "start": TODAY.isoformat(),
            "end": (TODAY + timedelta(days=1)).isoformat(),
            "format": "csv",
        },
    ).text
    assert csv_text.splitlines()[0].startswith("code,entitled_percent")


@pytest.mark.parametrize(
    ("overrides", "status", "fragment"),
    [
        ({"requested": {"A100": "10"}}, 422, "offers no A100"),
        ({"requested": {}}, 422, "at least one accelerator"),
        ({"requested": {"H100": "-5"}}, 422, "requested"),
        ({"requested": {"H100": "2000000"}}, 422, "at most"),
        ({"ends_on": TODAY.isoformat()}, 422, "after starts_on"),
        ({"call_id": 999}, 404, "no call"),
        ({"institution_id": 999}, 404, "no institution"),
        ({"team": [999]}, 404, "no person"),
        ({"level": 7}, 422, "level"),
        ({"surprise": 1}, 422, "unknown field"),
    ],
)
def test_bad_proposals_change_nothing(client, app, world, overrides, status, fragment):
    _, pi_auth = world["pi"]
    before = len(record_entries(client, app))
    response = client.post(
        "/api/v1/proposals", json=proposal_body(world, **overrides), headers=pi_auth
    )
    assert response.status_code == status, response.text
    assert fragment in problem(response)["detail"]
    assert len(record_entries(client, app)) == before


def test_eligibility_window_and_roles(client, operator, world):
    _, pi_auth = world["pi"]
    closed = client.post(
        "/api/v1/calls",
        json={
            "title": "SMEs only",
            "pool": "smes_and_public_bodies",
            "budget": {"H100": "1000"},
            "opens_at": iso(days=-10),
            "closes_at": iso(days=-1),
            "eligible_kinds": ["sme"],
            "rubric": [{"criterion": "impact", "weight": 1}],
        },
        headers=operator,
    ).json()
    late = client.post(
        "/api/v1/proposals", json=proposal_body(world, call_id=closed["id"]), headers=pi_auth
    )
    assert late.status_code == 409 and "takes proposals" in problem(late)["detail"]
    sme_call = client.post(
        "/api/v1/calls",
        json={
            "title": "SMEs now",
            "pool": "smes_and_public_bodies",
            "budget": {"H100": "1000"},
            "opens_at": iso(minutes=-1),
            "closes_at": iso(days=3),
            "eligible_kinds": ["sme"],
            "rubric": [{"criterion": "impact", "weight": 1}],
        },
        headers=operator,
    ).json()
    wrong_kind = client.post(
        "/api/v1/proposals",
        json=proposal_body(world, call_id=sme_call["id"], requested={"H100": "10"}),
        headers=pi_auth,
    )
    assert wrong_kind.status_code == 422 and "open to sme" in problem(wrong_kind)["detail"]
    (_, r1_auth) = world["reviewers"][0]
    assert (
        client.post("/api/v1/proposals", json=proposal_body(world), headers=r1_auth).status_code
        == 403
    )
    assert client.post("/api/v1/calls", json={}, headers=pi_auth).status_code in (403, 422)


def test_review_rules(client, operator, world):
    pi, pi_auth = world["pi"]
    pid = client.post("/api/v1/proposals", json=proposal_body(world), headers=pi_auth).json()["id"]
    (r1, r1_auth), (r2, r2_auth), _ = world["reviewers"]
    assert (
        client.post(
            "/api/v1/conflicts",
            json={"person_id": pi["id"], "reason": "former student"},
            headers=r2_auth,
        ).status_code
        == 201
    )
    declared = client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": r2["id"]}, headers=operator
    )
    assert declared.status_code == 409 and "declared a conflict" in problem(declared)["detail"]
    unassigned = client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 5, "openness": 5}},
        headers=r1_auth,
    )
    assert unassigned.status_code == 403
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": r1["id"]}, headers=operator
    )
    partial = client.post(
        f"/api/v1/proposals/{pid}/review", json={"scores": {"excellence": 5}}, headers=r1_auth
    )
    assert partial.status_code == 422 and "openness" in problem(partial)["detail"]
    out_of_range = client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 9, "openness": 1}},
        headers=r1_auth,
    )
    assert out_of_range.status_code == 422
    assert client.get(f"/api/v1/proposals/{pid}", headers=r2_auth).status_code == 403
    assert client.get(f"/api/v1/proposals/{pid}").status_code == 403
    assert (
        client.get(f"/api/v1/proposals/{pid}", headers=pi_auth).json()["title"]
        == "Speech models for Swahili"
    )
    unreviewed = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    )
    assert unreviewed.status_code == 409
    assert (
        client.post(
            f"/api/v1/proposals/{pid}/decision", json={"award": False}, headers=operator
        ).json()["allocation"]
        is None
    )
    assert (
        client.post(
            f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
        ).status_code
        == 409
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/calls/0",
        "/api/v1/allocations/x",
        "/api/v1/reports/shares?start=2027-01-01",
        "/api/v1/reports/shares?start=2027-01-02&end=2027-01-01",
        "/api/v1/reports/shares?start=2027-01-01&end=2027-02-01&format=xml",
    ],
)
def test_bad_reads(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500
    problem(response)


def test_usage_reports_by_group(client, operator, world):
    _, pi_auth = person_with_token(
        client, operator, "Amélie Durand", ["pi"], world["inst"]["FR"]["id"]
    )
    body = proposal_body(
        world, requested={"H100": "3000"}, institution_id=world["inst"]["FR"]["id"]
    )
    pid = client.post("/api/v1/proposals", json=body, headers=pi_auth).json()["id"]
    reviewer, reviewer_auth = world["reviewers"][0]
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": reviewer["id"]}, headers=operator
    )
    client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 4, "openness": 4}},
        headers=reviewer_auth,
    )
    allocation = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    ).json()["allocation"]
    held = client.post(
        f"/api/v1/allocations/{allocation['id']}/reservations",
        json={"accelerator": "H100", "hours": "200", "job": "r"},
        headers=operator,
    ).json()
    client.post(
        f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "150"}, headers=operator
    )
    window = {
        "start": (TODAY - timedelta(days=1)).isoformat(),
        "end": (TODAY + timedelta(days=1)).isoformat(),
    }
    for by, group in [
        ("member", "FR"),
        ("institution", "Inria"),
        ("call", f"call/{world['call']['id']}"),
        ("project", allocation["project"]),
    ]:
        rows = client.get("/api/v1/reports/usage", params={**window, "by": by}).json()["rows"]
        assert rows == [
            {"group": group, "allocations": 1, "budget_hours": "3000", "delivered_hours": "150.00"}
        ]
    csv_text = client.get("/api/v1/reports/usage", params={**window, "format": "csv"}).text
    assert csv_text.splitlines()[0] == "group,allocations,budget_hours,delivered_hours"
    bad = client.get("/api/v1/reports/usage", params={**window, "by": "planet"})
    assert bad.status_code == 422
