"""What-if simulations attached to motions through the API, on SQLite and PostgreSQL:
attaching, listing, the record entry, and every refusal changing nothing."""

from __future__ import annotations

import hashlib

import pytest

from commonlab.record.canonical import canonical_json
from tests.helpers import person_with_token, problem, record_entries
from tests.simulator.whatifs import (
    PROPOSED,
    changed,
    found_council,
    table,
    whatif_body,
)


@pytest.fixture
def seats(client, operator):
    return found_council(client, operator)


@pytest.fixture
def motion(client, seats):
    return table(client, seats["IT"], "adopt_regulation", {"regulation": PROPOSED})


def _attach(client, headers, motion_id, body):
    return client.post(f"/api/v1/motions/{motion_id}/simulations", json=body, headers=headers)


def test_a_delegate_attaches_a_simulation_and_the_record_carries_its_digest(
    client, app, seats, motion
):
    body = whatif_body()
    response = _attach(client, seats["FR"], motion, body)
    assert response.status_code == 201, response.text
    attached = response.json()
    assert attached["motion_id"] == motion
    assert attached["attached_by"] == "Delegate of France"
    assert attached["document"]["proposed"]["figures"]["pools"]["open_calls"]["mean_wait_h"] == 0.5
    assert attached["sha256"] == hashlib.sha256(canonical_json(attached["document"])).hexdigest()

    [entry] = record_entries(client, app, type="simulator")
    assert entry["type"] == "simulator:whatif:attached"
    assert entry["subject"] == f"motion/{motion}"
    assert entry["actor"]["role"] == "delegate"
    assert entry["data"]["sha256"] == attached["sha256"]
    assert entry["data"]["whatif"] == attached["id"]
    assert entry["data"]["in_force"]["version"] == 0

    listed = client.get(f"/api/v1/motions/{motion}/simulations").json()  # public
    assert [item["id"] for item in listed["items"]] == [attached["id"]]
    assert listed["next"] is None


def test_an_operator_may_attach_and_the_list_pages_oldest_first(client, operator, motion):
    first = _attach(client, operator, motion, whatif_body()).json()
    second = _attach(client, operator, motion, changed(whatif_body(), "policy", "fifo")).json()
    page = client.get(f"/api/v1/motions/{motion}/simulations", params={"limit": 1}).json()
    assert [item["id"] for item in page["items"]] == [first["id"]]
    rest = client.get(
        f"/api/v1/motions/{motion}/simulations", params={"after": page["next"]}
    ).json()
    assert [item["id"] for item in rest["items"]] == [second["id"]]
    assert rest["items"][0]["document"]["policy"] == "fifo"


def test_only_adopt_regulation_motions_carry_a_simulation(client, app, seats):
    other = table(
        client,
        seats["IT"],
        "set_contribution_scale",
        {"shares": {"IT": "20", "FR": "25", "DE": "25", "ES": "15", "SE": "15"}},
    )
    response = _attach(client, seats["IT"], other, whatif_body())
    assert response.status_code == 422
    assert "only adopt_regulation motions" in problem(response)["detail"]
    assert client.get(f"/api/v1/motions/{other}/simulations").json()["items"] == []
    assert record_entries(client, app, type="simulator") == []


WINDOW = {"from": "2026-09-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("policy", "lottery", "policy"),
        ("in_force.figures.utilisation", 1.5, "utilisation"),
        ("workload.jobs", 0, "workload.jobs"),
        ("proposed.figures.pools.open_calls.mean_wait_h", -1, "mean_wait_h"),
        ("in_force.regulation.sha256", "0" * 64, "version 0 has sha256"),
        ("in_force.regulation.version", 7, "no regulation version 7"),
        ("in_force.regulation.version", None, "name the adopted version"),
        ("proposed.regulation.sha256", "f" * 64, "not the regulation motion"),
        ("workload.surprise", 1, "unknown field"),
        ("proposed.figures.pools", {"open_calls": None}, "proposed.figures.pools"),
        # Which workload it replayed: a kind it knows, the facility's own with its window.
        ("workload.source", {"kind": "rumour", "jobs": 3}, "workload.source.kind"),
        ("workload.source", {"kind": "facility", "jobs": 3}, "name the window"),
        ("workload.source", {**WINDOW, "kind": "facility", "jobs": -1}, "workload.source.jobs"),
        (
            "workload.source",
            {"kind": "facility", "from": "2026-01-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"}
            | {"jobs": 3},
            "at most 366 days",
        ),
        (
            "workload.source",
            {"kind": "facility", "from": "2026-12-01T00:00:00Z", "to": "2026-09-01T00:00:00Z"}
            | {"jobs": 3},
            "to must be after from",
        ),
        ("workload.source", {**WINDOW, "kind": "facility", "jobs": 3, "from": "soon"}, "from"),
        ("workload.source", {**WINDOW, "kind": "trace", "jobs": 3}, "drop from/to"),
        ("workload.source", {**WINDOW, "kind": "facility", "jobs": 3, "by": "x"}, "by"),
    ],
)
def test_bad_simulations_are_refused_and_change_nothing(
    client, app, seats, motion, path, value, fragment
):
    response = _attach(client, seats["IT"], motion, changed(whatif_body(), path, value))
    assert response.status_code == 422, response.text
    assert fragment in problem(response)["detail"]
    assert client.get(f"/api/v1/motions/{motion}/simulations").json()["items"] == []
    assert record_entries(client, app, type="simulator") == []


def test_the_workload_replayed_reads_back_as_sent(client, seats, motion):
    source = {**WINDOW, "kind": "facility", "jobs": 412}
    response = _attach(
        client, seats["IT"], motion, changed(whatif_body(), "workload.source", source)
    )
    assert response.status_code == 201, response.text
    [listed] = client.get(f"/api/v1/motions/{motion}/simulations").json()["items"]
    assert listed["document"]["workload"]["source"] == {
        **source,
        "from": "2026-09-01T00:00:00Z",
        "to": "2026-12-01T00:00:00Z",
    }


def test_sides_with_different_pools_are_refused(client, seats, motion):
    body = whatif_body()
    del body["proposed"]["figures"]["pools"]["open_calls"]
    response = _attach(client, seats["IT"], motion, body)
    assert response.status_code == 422
    assert "same pools" in problem(response)["detail"]


def test_malformed_json_and_oversized_simulations_are_refused(client, app, seats, motion):
    malformed = client.post(
        f"/api/v1/motions/{motion}/simulations",
        content=b'{"policy": "commonlab",',
        headers={**seats["IT"], "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert "not valid JSON" in problem(malformed)["detail"]

    # Every field within its bounds, the whole over the size kept.
    big = whatif_body()
    big["workload"]["how"] = ["x" * 1000] * 40
    big["workload"]["traces"] = ["t" * 1000] * 20
    big["workload"]["set_aside"] = {f"{i:04d}" + "r" * 996: 1 for i in range(20)}
    response = _attach(client, seats["IT"], motion, big)
    assert response.status_code == 422
    assert "bytes; at most" in problem(response)["detail"]

    huge = whatif_body()
    huge["workload"]["how"] = ["x" * 100_000] * 20
    response = _attach(client, seats["IT"], motion, huge)
    assert response.status_code == 413
    assert record_entries(client, app, type="simulator") == []


def test_the_public_and_other_roles_may_not_attach(client, app, operator, motion):
    response = _attach(client, {}, motion, whatif_body())
    assert response.status_code in (401, 403)
    _, researcher = person_with_token(client, operator, "A researcher")
    response = _attach(client, researcher, motion, whatif_body())
    assert response.status_code == 403
    assert "delegates and operators" in problem(response)["detail"]
    assert record_entries(client, app, type="simulator") == []


def test_unknown_motions_are_404(client, operator):
    assert _attach(client, operator, 999, whatif_body()).status_code == 404
    assert client.get("/api/v1/motions/999/simulations").status_code == 404
