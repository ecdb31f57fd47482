"""Finding 6 of issue 13 (allocation side), replayed: conflicts of interest were checked only
at assignment, and a proposal's institution was whatever its PI named.

A reviewer whose institution became the PI's after assignment, or who declared a conflict
after it, kept reading and scoring the proposal; a PI submitted on behalf of a foreign
ministry, whose country's share then counted the hours. Now every read and score checks
conflicts against today's facts (403, nothing written), and a proposal's institution is
its PI's. On SQLite and PostgreSQL, through the API and the portal.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from commonlab.allocation.models import Proposal, Review
from commonlab.record.models import Entry
from tests.helpers import person_with_token, problem
from tests.portal.helpers import csrf_of
from tests.portal.helpers import sign_in as portal_sign_in

TODAY = date.today()


@pytest.fixture
def world(client, operator) -> dict[str, Any]:
    """A PI at a Kenyan university, a reviewer at an Italian one, an Italian ministry, a
    call, and a proposal with the reviewer assigned."""
    inst = {
        key: client.post(
            "/api/v1/institutions",
            json={"name": name, "country": country, "kind": kind},
            headers=operator,
        ).json()
        for key, name, country, kind in [
            ("nairobi", "University of Nairobi", "KE", "university"),
            ("sapienza", "Sapienza", "IT", "university"),
            ("ministry", "Italian Ministry of Economy", "IT", "government"),
        ]
    }
    pi, pi_auth = person_with_token(
        client, operator, "Wanjiru", ["pi", "researcher"], inst["nairobi"]["id"]
    )
    reviewer, reviewer_auth = person_with_token(
        client, operator, "Giulia", ["reviewer"], inst["sapienza"]["id"]
    )
    now = datetime.now(UTC)
    call = client.post(
        "/api/v1/calls",
        json={
            "title": "Speech",
            "pool": "open_calls",
            "budget": {"H100": "1000"},
            "opens_at": (now - timedelta(minutes=5)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "rubric": [{"criterion": "excellence", "weight": 1}],
        },
        headers=operator,
    ).json()
    world = {
        "inst": inst,
        "pi": pi,
        "pi_auth": pi_auth,
        "reviewer": reviewer,
        "reviewer_auth": reviewer_auth,
        "call": call,
    }
    made = client.post("/api/v1/proposals", json=proposal_body(world), headers=pi_auth)
    assert made.status_code == 201, made.text
    world["proposal"] = made.json()["id"]
    assigned = client.post(
        f"/api/v1/proposals/{world['proposal']}/reviewers",
        json={"reviewer_id": reviewer["id"]},
        headers=operator,
    )
    assert assigned.status_code == 201, assigned.text
    return world


def proposal_body(world: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "call_id": world["call"]["id"],
        "institution_id": world["inst"]["nairobi"]["id"],
        "title": "Swahili speech",
        "abstract": "Open ASR for Swahili.",
        "requested": {"H100": "100"},
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=365)).isoformat(),
        "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"},
        **overrides,
    }


def sign_in(client, headers: dict[str, str]) -> str:
    """Sign in to the portal with the token in `headers`; the session's CSRF token."""
    portal_sign_in(client, headers["Authorization"].split()[1])
    return csrf_of(client.get("/reviews").text)


def snapshot(facility) -> tuple[int, int, list[Any]]:
    with facility.db.session() as db:
        return (
            db.scalar(select(func.count()).select_from(Entry)) or 0,
            db.scalar(select(func.count()).select_from(Proposal)) or 0,
            [(r.scores, r.comment, r.submitted_at) for r in db.scalars(select(Review))],
        )


def read_and_score(client, world: dict[str, Any]) -> tuple[Any, Any]:
    pid, headers = world["proposal"], world["reviewer_auth"]
    return (
        client.get(f"/api/v1/proposals/{pid}", headers=headers),
        client.post(
            f"/api/v1/proposals/{pid}/review",
            json={"scores": {"excellence": 5}, "comment": "a colleague's: top marks"},
            headers=headers,
        ),
    )


def assert_refused(client, facility, world: dict[str, Any], reason: str) -> None:
    before = snapshot(facility)
    for answer in read_and_score(client, world):
        assert answer.status_code == 403, answer.text
        detail = problem(answer)["detail"]
        assert reason in detail and "no longer" in detail and "reassign" in detail
    assert snapshot(facility) == before
    sign_in(client, world["reviewer_auth"])
    queue = client.get("/reviews")
    assert queue.status_code == 200 and "Swahili speech" not in queue.text
    page = client.get(f"/proposals/{world['proposal']}")
    assert page.status_code == 403 and "Swahili speech" not in page.text
    assert reason in page.text


def test_a_free_reviewer_reads_and_scores(client, world):
    read, scored = read_and_score(client, world)
    assert read.status_code == 200 and scored.status_code == 200, (read.text, scored.text)
    sign_in(client, world["reviewer_auth"])
    assert "Swahili speech" in client.get("/reviews").text


def test_a_reviewer_moved_to_the_pis_institution_can_no_longer_read_or_score(
    client, operator, facility, world
):
    moved = client.patch(
        f"/api/v1/people/{world['reviewer']['id']}",
        json={"institution_id": world["inst"]["nairobi"]["id"]},
        headers=operator,
    )
    assert moved.status_code == 200, moved.text
    assert_refused(client, facility, world, "same institution as the PI")


def test_a_conflict_declared_after_assignment_ends_read_and_score(client, facility, world):
    declared = client.post(
        "/api/v1/conflicts",
        json={"person_id": world["pi"]["id"], "reason": "we co-supervise a student"},
        headers=world["reviewer_auth"],
    )
    assert declared.status_code == 201, declared.text
    assert_refused(client, facility, world, "declared a conflict")


def test_the_portal_score_form_refuses_a_conflicted_reviewer(client, facility, world):
    csrf = sign_in(client, world["reviewer_auth"])  # the form was open to her when assigned
    client.post(
        "/api/v1/conflicts",
        json={"person_id": world["pi"]["id"], "reason": "a friend"},
        headers=world["reviewer_auth"],
    )
    before = snapshot(facility)
    posted = client.post(
        f"/reviews/{world['proposal']}",
        data={"csrf": csrf, "criterion": ["excellence"], "score": ["5"]},
    )
    assert posted.status_code == 403 and "declared a conflict" in posted.text
    assert snapshot(facility) == before


def test_a_proposal_on_behalf_of_another_institution_is_refused(client, facility, world):
    before = snapshot(facility)
    foreign = client.post(
        "/api/v1/proposals",
        json=proposal_body(world, institution_id=world["inst"]["ministry"]["id"]),
        headers=world["pi_auth"],
    )
    assert foreign.status_code == 422, foreign.text
    detail = problem(foreign)["detail"]
    assert "its PI's (University of Nairobi" in detail and "Italian Ministry" in detail
    assert snapshot(facility) == before


def test_a_proposals_institution_is_its_pis(client, operator, world):
    unnamed = {k: v for k, v in proposal_body(world).items() if k != "institution_id"}
    made = client.post("/api/v1/proposals", json=unnamed, headers=world["pi_auth"])
    assert made.status_code == 201, made.text
    assert made.json()["institution_id"] == world["inst"]["nairobi"]["id"]


def test_a_pi_without_an_institution_is_told_to_ask_an_operator(client, operator, world):
    _, loner_auth = person_with_token(client, operator, "No affiliation", ["pi", "researcher"])
    unnamed = {k: v for k, v in proposal_body(world).items() if k != "institution_id"}
    refused = client.post("/api/v1/proposals", json=unnamed, headers=loner_auth)
    assert refused.status_code == 422 and "ask an operator" in problem(refused)["detail"]


def test_a_score_given_before_a_conflict_arose_leaves_the_ranking(client, operator, world):
    _, scored = read_and_score(client, world)
    assert scored.status_code == 200, scored.text
    ranking = f"/api/v1/calls/{world['call']['id']}/ranking"
    assert client.get(ranking, headers=operator).json()[0]["score"] == "5.00"
    declared = client.post(
        "/api/v1/conflicts",
        json={"person_id": world["pi"]["id"], "reason": "we started a company together"},
        headers=world["reviewer_auth"],
    )
    assert declared.status_code == 201, declared.text
    assert client.get(ranking, headers=operator).json()[0]["score"] is None
