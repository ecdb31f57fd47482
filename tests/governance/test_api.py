"""The council end to end through the API, on SQLite and PostgreSQL: founding, delegates,
motions, votes, closing (with effects), regulations, and every refusal changing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commonlab.governance.service import close_due_motions
from tests.helpers import (
    FOUNDERS,
    auth,
    close_when_due,
    found_council,
    person_with_token,
    problem,
    record_entries,
)


def soon(minutes=2):
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def council(client, operator):
    """Founded council of five with one delegate each; returns code → auth headers."""
    return {code: auth(token) for code, token in found_council(client, operator, FOUNDERS).items()}


def table(client, headers, kind, payload, **extra):
    body = {
        "kind": kind,
        "title": f"{kind} motion",
        "payload": payload,
        "closes_at": soon(),
        **extra,
    }
    return client.post("/api/v1/motions", json=body, headers=headers)


def vote(client, headers, motion_id, choice, **extra):
    return client.post(
        f"/api/v1/motions/{motion_id}/votes", json={"choice": choice, **extra}, headers=headers
    )


def close_now(facility, motion_id):
    close_when_due(facility.db, motion_id)


def test_founding_lists_members_with_their_shares(client, council):
    members = client.get("/api/v1/members").json()
    assert [(m["code"], m["contribution"]) for m in members] == [
        ("DE", "20"),
        ("ES", "15"),
        ("FR", "25"),
        ("IT", "25"),
        ("SE", "15"),
    ]
    assert members[0]["delegates"][0]["name"] == "Delegate of Germany"
    assert client.get("/api/v1/contribution-scale").json()["current"]["IT"] == "25"


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ([{"code": "IT", "name": "Italy", "contribution": "90"}], "sums to 90"),
        (
            [
                {"code": "IT", "name": "Italy", "contribution": "50"},
                {"code": "FR", "name": "France", "contribution": "50"},
            ],
            "above the ceiling",
        ),
        (
            [
                {"code": "IT", "name": "Italy", "contribution": "100"},
                {"code": "IT", "name": "Italy", "contribution": "0"},
            ],
            "once",
        ),
        ([{"code": "XX", "name": "Nowhere", "contribution": "100"}], "ISO 3166"),
        ([{"code": "IT", "name": "Italy", "contribution": "-5"}], "contribution"),
    ],
)
def test_bad_founding_changes_nothing(client, app, operator, members, fragment):
    response = client.post("/api/v1/members", json={"members": members}, headers=operator)
    assert 400 <= response.status_code < 500
    assert fragment in problem(response)["detail"]
    assert client.get("/api/v1/members").json() == []
    assert record_entries(client, app, type="governance") == []


def test_only_operators_found_and_only_once(client, council, operator):
    assert (
        client.post(
            "/api/v1/members", json={"members": FOUNDERS}, headers=council["IT"]
        ).status_code
        == 403
    )
    again = client.post("/api/v1/members", json={"members": FOUNDERS}, headers=operator)
    assert again.status_code == 409


def test_estonia_joins_by_double_majority(client, app, facility, council):
    scale = {"IT": "22", "FR": "22", "DE": "20", "ES": "13", "SE": "13", "EE": "10"}
    response = table(
        client, council["SE"], "admit_member", {"code": "EE", "name": "Estonia", "scale": scale}
    )
    assert response.status_code == 201, response.text
    motion = response.json()
    assert motion["rule"] == "double"
    for code, choice in [
        ("IT", "yes"),
        ("FR", "yes"),
        ("DE", "yes"),
        ("ES", "no"),
        ("SE", "abstain"),
    ]:
        assert vote(client, council[code], motion["id"], choice).status_code == 201
    close_now(facility, motion["id"])
    decided = client.get(f"/api/v1/motions/{motion['id']}").json()
    assert decided["status"] == "passed"
    assert decided["result"]["yes"] == 3 and decided["result"]["yes_contribution_percent"] == "70"
    assert {v["member"]: v["choice"] for v in decided["votes"]}["ES"] == "no"
    members = {m["code"]: m for m in client.get("/api/v1/members").json()}
    assert members["EE"]["admitted_by_motion"] == motion["id"]
    assert members["EE"]["contribution"] == "10"
    types = [e["type"] for e in record_entries(client, app, type="governance")]
    assert types[-4:] == [
        "governance:vote:cast",
        "governance:member:admitted",
        "governance:scale:adopted",
        "governance:motion:decided",
    ]
    decided_entry = record_entries(client, app, type="governance:motion:decided")[0]
    assert decided_entry["data"]["roll_call"] == {
        "DE": "yes",
        "ES": "no",
        "FR": "yes",
        "IT": "yes",
        "SE": "abstain",
    }


def test_a_double_majority_fails_without_the_contributions(client, facility, council):
    motion = table(
        client,
        council["ES"],
        "set_contribution_scale",
        {"shares": {"IT": "20", "FR": "20", "DE": "20", "ES": "20", "SE": "20"}},
    ).json()
    for code in ("DE", "ES", "SE"):
        vote(client, council[code], motion["id"], "yes")
    for code in ("IT", "FR"):
        vote(client, council[code], motion["id"], "no")
    close_now(facility, motion["id"])
    decided = client.get(f"/api/v1/motions/{motion['id']}").json()
    assert decided["status"] == "failed"
    assert "50% of contributions is not a majority" in decided["result"]["reason"]
    assert client.get("/api/v1/contribution-scale").json()["current"]["IT"] == "25"


def test_voting_refusals_change_nothing(client, app, facility, council, operator):
    motion = table(
        client, council["IT"], "register_witness", {"name": "w", "verifier_key": _witness_key("w")}
    ).json()
    url = f"/api/v1/motions/{motion['id']}/votes"
    assert (
        client.post(url, json={"choice": "yes"}, headers=operator).status_code == 403
    )  # not a delegate
    assert client.post(url, json={"choice": "yes"}).status_code == 403  # the public
    assert vote(client, council["IT"], motion["id"], "yes", member="FR").status_code == 403
    assert vote(client, council["IT"], motion["id"], "yes").status_code == 201
    twice = vote(client, council["IT"], motion["id"], "yes")
    assert twice.status_code == 409 and "already voted yes" in problem(twice)["detail"]
    changed = vote(client, council["IT"], motion["id"], "no")
    assert changed.status_code == 201
    assert client.post(url, json={"choice": "maybe"}, headers=council["FR"]).status_code == 422
    votes = client.get(f"/api/v1/motions/{motion['id']}").json()["votes"]
    assert [(v["member"], v["choice"]) for v in votes] == [("IT", "no")]
    close_now(facility, motion["id"])
    late = vote(client, council["FR"], motion["id"], "yes")
    assert late.status_code == 409 and "over" in problem(late)["detail"]


def test_voting_before_the_window_opens(client, council):
    motion = table(
        client,
        council["IT"],
        "register_witness",
        {"name": "w", "verifier_key": _witness_key("w")},
        opens_at=soon(10),
        closes_at=soon(60),
    ).json()
    early = vote(client, council["FR"], motion["id"], "yes")
    assert early.status_code == 409 and "opens at" in problem(early)["detail"]


@pytest.mark.parametrize(
    ("kind", "payload", "extra", "status", "fragment"),
    [
        ("approve_allocation", {}, {}, 422, "payload.allocation_id"),
        ("approve_allocation", {"allocation_id": 99}, {}, 404, "no allocation"),
        ("certify_partition", {}, {}, 422, "payload.partition"),
        ("certify_partition", {"partition": "nosuch", "level": 3}, {}, 422, "no partition"),
        ("certify_partition", {"partition": "local", "level": 5}, {}, 422, "payload.level"),
        ("certify_partition", {"partition": "local", "level": 1}, {}, 409, "already certified"),
        (
            "adopt_regulation",
            {"regulation": {"title": "x"}},
            {},
            422,
            "payload.regulation.capacity",
        ),
        (
            "adopt_regulation",
            {
                "regulation": {
                    "title": "x",
                    "capacity": {
                        "national_pools": 50,
                        "open_calls": 30,
                        "smes_and_public_bodies": 10,
                        "directors_reserve": 0,
                    },
                }
            },
            {},
            422,
            "sums to 90",
        ),
        (
            "set_contribution_scale",
            {"shares": {"IT": "40", "FR": "30", "DE": "10", "ES": "10", "SE": "10"}},
            {},
            422,
            "above the ceiling",
        ),
        (
            "set_contribution_scale",
            {"shares": {"IT": "25", "FR": "25", "DE": "25", "ES": "25"}},
            {},
            422,
            "missing SE",
        ),
        ("admit_member", {"code": "IT", "name": "Italy"}, {}, 409, "is, or was, a member"),
        ("remove_member", {"code": "IT"}, {}, 422, "holds a contribution share"),
        (
            "register_witness",
            {"name": "w", "verifier_key": "nonsense"},
            {},
            422,
            "witness verifier key",
        ),
        ("grant_cl4_clearance", {"person_id": 999, "expires_at": soon(60)}, {}, 404, "no person"),
        (
            "register_witness",
            {"name": "w", "verifier_key": "k", "extra": 1},
            {},
            422,
            "payload.extra",
        ),
        (
            "admit_member",
            {"code": "EE", "name": "Estonia"},
            {"closes_at": soon(0)},
            422,
            "between one minute",
        ),
        (
            "admit_member",
            {"code": "EE", "name": "Estonia"},
            {"closes_at": soon(60 * 24 * 100)},
            422,
            "90 days",
        ),
    ],
)
def test_bad_motions_are_refused_and_change_nothing(
    client, app, council, kind, payload, extra, status, fragment
):
    before = len(record_entries(client, app))
    response = table(client, council["IT"], kind, payload, **extra)
    assert response.status_code == status, response.text
    assert fragment in problem(response)["detail"]
    assert client.get("/api/v1/motions").json()["items"] == []
    assert len(record_entries(client, app)) == before


def test_non_delegates_cannot_table(client, operator, council):
    response = table(client, operator, "admit_member", {"code": "EE", "name": "Estonia"})
    assert response.status_code == 403
    _, unseated_delegate = person_with_token(client, operator, "R", ["delegate"], scopes=["write"])
    unseated = table(client, unseated_delegate, "admit_member", {"code": "EE", "name": "Estonia"})
    assert unseated.status_code == 422 and "do not sit" in problem(unseated)["detail"]


def test_closing_rules(client, facility, council):
    motion = table(
        client, council["IT"], "register_witness", {"name": "w", "verifier_key": _witness_key("w")}
    ).json()
    early = client.post(f"/api/v1/motions/{motion['id']}/close", headers=council["FR"])
    assert early.status_code == 409 and "open until" in problem(early)["detail"]
    close_now(facility, motion["id"])
    again = client.post(f"/api/v1/motions/{motion['id']}/close", headers=council["FR"])
    assert again.status_code == 409
    assert (
        client.get(f"/api/v1/motions/{motion['id']}")
        .json()["result"]["reason"]
        .startswith("no quorum")
    )


def test_the_last_state_to_vote_closes_the_motion_at_once_on_the_record(client, app, council):
    key = _witness_key("early.ee")
    motion = table(
        client, council["IT"], "register_witness", {"name": "early.ee", "verifier_key": key}
    ).json()
    for code in ("IT", "FR", "DE", "ES"):
        assert vote(client, council[code], motion["id"], "yes").status_code == 201
    assert client.get(f"/api/v1/motions/{motion['id']}").json()["status"] == "open"
    assert vote(client, council["SE"], motion["id"], "no").status_code == 201
    decided = client.get(f"/api/v1/motions/{motion['id']}").json()
    assert decided["status"] == "passed"  # well before its deadline
    (entry,) = record_entries(client, app, type="governance:motion:decided")
    assert entry["data"]["closed_early"] is True
    assert entry["data"]["roll_call"] == {
        "DE": "yes", "ES": "yes", "FR": "yes", "IT": "yes", "SE": "no"
    }  # fmt: skip
    # Nobody may change their mind once the vote is over.
    late = vote(client, council["SE"], motion["id"], "yes")
    assert late.status_code == 409 and "vote is over" in problem(late)["detail"]


def test_an_early_close_says_until_when_to_the_second(client, council):
    motion = table(
        client,
        council["IT"],
        "register_witness",
        {"name": "w2", "verifier_key": _witness_key("w2")},
    ).json()
    early = client.post(f"/api/v1/motions/{motion['id']}/close", headers=council["FR"])
    closes_at = datetime.fromisoformat(motion["closes_at"].replace("Z", "+00:00"))
    assert f"open until {closes_at:%Y-%m-%d %H:%M:%S} UTC" in problem(early)["detail"]


def test_the_ticker_closes_due_motions_and_applies_them(client, facility, council):
    key = _witness_key("audit.ee")
    motion = table(
        client, council["IT"], "register_witness", {"name": "audit.ee", "verifier_key": key}
    ).json()
    for code in ("IT", "FR", "DE"):
        vote(client, council[code], motion["id"], "yes")
    with facility.db.session() as session:
        assert close_due_motions(session) == []  # not due yet
        assert close_due_motions(session, now=datetime.now(UTC) + timedelta(hours=1)) == [
            motion["id"]
        ]
    assert [w["name"] for w in client.get("/api/v1/record/witnesses").json()] == ["audit.ee"]


def test_a_passed_motion_that_can_no_longer_apply_lapses(client, app, facility, council):
    first = table(client, council["IT"], "admit_member", {"code": "EE", "name": "Estonia"}).json()
    second = table(client, council["FR"], "admit_member", {"code": "EE", "name": "Eesti"}).json()
    for motion in (first, second):
        # Four of five now, so the second still has a majority once Estonia makes six.
        for code in ("IT", "FR", "DE", "ES"):
            vote(client, council[code], motion["id"], "yes")
    close_now(facility, first["id"])
    close_now(facility, second["id"])
    lapsed = client.get(f"/api/v1/motions/{second['id']}").json()
    assert lapsed["status"] == "lapsed"
    assert "is, or was, a member" in lapsed["result"]["effect_error"]
    assert [m["name"] for m in client.get("/api/v1/members").json() if m["code"] == "EE"] == [
        "Estonia"
    ]
    admitted = record_entries(client, app, type="governance:member:admitted")
    assert len(admitted) == 1


def test_amending_the_regulation_changes_what_authorization_allows(
    client, app, facility, council, operator
):
    researcher = client.post("/api/v1/people", json={"name": "R"}, headers=operator).json()
    grant = lambda days: client.post(  # noqa: E731
        f"/api/v1/people/{researcher['id']}/clearances",
        json={"level": 2, "expires_at": soon(60 * 24 * days)},
        headers=operator,
    )
    assert grant(100).status_code == 201
    regulation = client.get("/api/v1/regulations/in-force").json()["document"]
    regulation["title"] = "Regulation of 2027"
    regulation["containment"]["cl2"]["max_clearance_days"] = 30
    regulation["containment"]["cl3"]["max_clearance_days"] = 30
    regulation["containment"]["cl4"]["max_clearance_days"] = 30
    motion = table(client, council["DE"], "adopt_regulation", {"regulation": regulation}).json()
    for code in ("IT", "FR", "DE"):
        vote(client, council[code], motion["id"], "yes")
    close_now(facility, motion["id"])
    in_force = client.get("/api/v1/regulations/in-force").json()
    assert (in_force["version"], in_force["document"]["title"]) == (1, "Regulation of 2027")
    refused = grant(100)
    assert refused.status_code == 403
    assert "regulation in force" in problem(refused)["detail"]
    assert grant(20).status_code == 201
    entry = record_entries(client, app, type="identity:clearance:granted")[-1]
    assert entry["data"]["regulation"] == {"version": 1, "sha256": in_force["sha256"]}
    changes = client.get("/api/v1/regulations/diff", params={"from": 0, "to": 1}).json()["changes"]
    assert {"field": "containment.cl2.max_clearance_days", "from": 730, "to": 30} in changes
    past = client.get("/api/v1/regulations/in-force", params={"at": "2020-01-01T00:00:00Z"}).json()
    assert past["version"] == 0
    versions = [r["version"] for r in client.get("/api/v1/regulations").json()]
    assert versions == [1, 0]


def test_cl4_clearance_by_council_vote(client, app, facility, council, operator):
    researcher = client.post(
        "/api/v1/people", json={"name": "Safety researcher"}, headers=operator
    ).json()
    payload = {
        "person_id": researcher["id"],
        "compartments": ["bio"],
        "expires_at": soon(60 * 24 * 20),
    }
    motion = table(client, council["FR"], "grant_cl4_clearance", payload).json()
    assert motion["rule"] == "two_thirds"
    for code in ("IT", "FR", "DE", "ES"):
        vote(client, council[code], motion["id"], "yes")
    close_now(facility, motion["id"])
    clearances = client.get(
        f"/api/v1/people/{researcher['id']}/clearances", headers=operator
    ).json()["items"]
    assert [(c["level"], c["compartments"]) for c in clearances] == [(4, ["bio"])]
    entry = record_entries(client, app, type="identity:clearance:granted")[-1]
    assert entry["data"]["motion"] == motion["id"]


def test_delegates_roll(client, app, operator, council):
    person = client.post("/api/v1/people", json={"name": "Not a delegate"}, headers=operator).json()
    assert (
        client.post(
            "/api/v1/members/XX/delegates", json={"person_id": person["id"]}, headers=operator
        ).status_code
        == 404
    )
    assert (
        "delegate"
        not in client.get(f"/api/v1/people/{person['id']}", headers=operator).json()["roles"]
    )  # a refused appointment granted nothing
    # One step: appointing someone without the delegate role grants it, both on the record.
    appointed = client.post(
        "/api/v1/members/IT/delegates", json={"person_id": person["id"]}, headers=operator
    )
    assert appointed.status_code == 201, appointed.text
    roles = client.get(f"/api/v1/people/{person['id']}", headers=operator).json()["roles"]
    assert "delegate" in roles
    granted = record_entries(client, app, type="identity:role:granted")[-1]
    assert granted["data"]["role"] == "delegate" and granted["data"]["name"] == "Not a delegate"
    assert (
        record_entries(client, app, type="governance:delegate:appointed")[-1]["data"]["name"]
        == "Not a delegate"
    )
    assert (
        client.post(
            "/api/v1/members/1T/delegates", json={"person_id": 1}, headers=operator
        ).status_code
        == 422
    )
    it = next(m for m in client.get("/api/v1/members").json() if m["code"] == "IT")
    seated = it["delegates"][0]["person_id"]
    again = client.post(
        "/api/v1/members/FR/delegates", json={"person_id": seated}, headers=operator
    )
    assert again.status_code == 409
    assert (
        client.delete(f"/api/v1/members/IT/delegates/{seated}", headers=operator).status_code == 200
    )
    ended = record_entries(client, app, type="governance:delegate:ended")
    assert ended[0]["data"]["name"] == "Delegate of Italy"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/motions/0",
        "/api/v1/motions/abc",
        "/api/v1/motions?status=won",
        "/api/v1/regulations/-1",
        "/api/v1/regulations/diff?from=0",
        "/api/v1/regulations/in-force?at=yesterday",
    ],
)
def test_bad_reads_are_422(client, path):
    response = client.get(path)
    assert response.status_code == 422
    problem(response)


def test_unknown_things_are_404(client):
    assert client.get("/api/v1/motions/99").status_code == 404
    assert client.get("/api/v1/regulations/7").status_code == 404


def _witness_key(name):
    from commonlab.record.checkpoint import generate_witness

    return generate_witness(name)[1]
