"""Reads that show a researcher where their compute stands, on SQLite and PostgreSQL: an
allocation's quarterly tranches (released, drawn, reserved, remaining) and the reviewers an
operator is offered for a proposal (free of conflicts, least loaded first)."""

from __future__ import annotations

from decimal import Decimal

from tests.allocation.test_api import proposal_body, world  # noqa: F401 (a fixture)
from tests.helpers import problem


def _awarded(client, operator, world, hours="4000"):  # noqa: F811
    _, pi_auth = world["pi"]
    body = proposal_body(world, requested={"H100": hours})
    pid = client.post("/api/v1/proposals", json=body, headers=pi_auth).json()["id"]
    (r1, r1_auth) = world["reviewers"][0]
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": r1["id"]}, headers=operator
    )
    client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 4, "openness": 4}},
        headers=r1_auth,
    )
    decided = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    )
    assert decided.status_code == 200, decided.text
    return decided.json()["allocation"]


def test_tranches_show_what_each_quarter_released_drew_and_holds(
    client,
    operator,
    world,  # noqa: F811
):
    allocation = _awarded(client, operator, world)
    url = f"/api/v1/allocations/{allocation['id']}/reservations"
    settled = client.post(
        url, json={"accelerator": "H100", "hours": "900", "job": "a"}, headers=operator
    ).json()
    client.post(
        f"/api/v1/ledger/{settled['reservation']}/settle", json={"hours": "600"}, headers=operator
    )
    client.post(url, json={"accelerator": "H100", "hours": "100", "job": "b"}, headers=operator)

    tranches = client.get(f"/api/v1/allocations/{allocation['id']}/tranches").json()
    assert sum(Decimal(t["released"]) for t in tranches) == Decimal("4000")
    assert [t["quarter"] for t in tranches] == list(range(len(tranches)))
    assert all(t["starts_on"] < t["ends_on"] for t in tranches)
    assert [t["ends_on"] for t in tranches[:-1]] == [t["starts_on"] for t in tranches[1:]]
    first, *later = tranches
    assert first["current"] and not any(t["current"] for t in later)
    assert (first["drawn"], first["reserved"]) == ("600.00", "100.00")
    left = Decimal(first["released"]) - 700
    assert Decimal(first["remaining"]) == left == Decimal(first["available"])
    assert all(t["drawn"] == "0.00" and t["available"] is None for t in later)
    assert all(t["remaining"] == t["released"] for t in later)


def test_tranches_of_an_unknown_allocation(client):
    assert client.get("/api/v1/allocations/9999/tranches").status_code == 404
    assert client.get("/api/v1/allocations/0/tranches").status_code == 422


def test_suggested_reviewers_leave_out_conflicts_and_the_assigned(
    client,
    operator,
    world,  # noqa: F811
):
    _, pi_auth = world["pi"]
    (r1, _), (r2, _), (r3, _) = world["reviewers"]
    first = client.post("/api/v1/proposals", json=proposal_body(world), headers=pi_auth).json()
    other = client.post(
        "/api/v1/proposals", json=proposal_body(world, title="Another"), headers=pi_auth
    ).json()
    # Paris already has an open review elsewhere: Rome, with none, comes first.
    client.post(
        f"/api/v1/proposals/{other['id']}/reviewers",
        json={"reviewer_id": r2["id"]},
        headers=operator,
    )
    url = f"/api/v1/proposals/{first['id']}/reviewers/suggested"
    suggested = client.get(url, headers=operator).json()
    assert suggested == [
        {"person_id": r1["id"], "name": r1["name"], "open_reviews": 0, "done_reviews": 0},
        {"person_id": r2["id"], "name": r2["name"], "open_reviews": 1, "done_reviews": 0},
    ]
    assert r3["id"] not in {s["person_id"] for s in suggested}  # same institution as the PI
    client.post(
        f"/api/v1/proposals/{first['id']}/reviewers",
        json={"reviewer_id": r1["id"]},
        headers=operator,
    )
    assert [s["person_id"] for s in client.get(url, headers=operator).json()] == [r2["id"]]


def test_suggested_reviewers_are_for_operators(client, operator, world):  # noqa: F811
    _, pi_auth = world["pi"]
    pid = client.post("/api/v1/proposals", json=proposal_body(world), headers=pi_auth).json()["id"]
    refused = client.get(f"/api/v1/proposals/{pid}/reviewers/suggested", headers=pi_auth)
    assert refused.status_code == 403, refused.text
    missing = client.get("/api/v1/proposals/9999/reviewers/suggested", headers=operator)
    assert missing.status_code == 404 and "proposal" in problem(missing)["detail"]
