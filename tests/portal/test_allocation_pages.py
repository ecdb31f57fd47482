"""The allocation pages through the ASGI app (SQLite and PostgreSQL): calls, a PI's proposal
form and its refusals, a reviewer's queue and scoring form, awarded projects, and the member
states' delivered versus entitled share; junk addresses get error pages, never a 500."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from commonlab.portal.allocation_views import _last_quarters, share_chart
from tests.helpers import (
    auth,
    founders,
    new_institutions,
    new_person,
    record_entries,
    token_for,
)
from tests.portal.helpers import csrf_of, sign_in

TODAY = date.today()


def _text(page: str) -> str:
    page = re.sub(r"</?(?:a|strong|em|code|span|time)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _iso(**delta: Any) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _person(
    client: TestClient, operator: dict[str, str], name: str, roles: list[str], inst: int
) -> tuple[int, str]:
    """A person's id and their bare token, which signs them in to the portal."""
    person_id = new_person(client, operator, name, roles, inst)["id"]
    return person_id, token_for(client, operator, person_id)


@pytest.fixture
def world(client: TestClient, operator: dict[str, str]) -> dict[str, Any]:
    """A founded council, three institutions, a PI, two reviewers and one open call."""
    assert client.post(
        "/api/v1/members", json={"members": founders("IT", "FR", "KE", "SE")}, headers=operator
    ).is_success
    inst = {country: row["id"] for country, row in new_institutions(client, operator).items()}
    # A proposal's institution is its PI's (issue 13): the PI is at Sapienza, so her
    # proposals count toward Italy's share; the "Rome" reviewer sits elsewhere.
    pi = _person(client, operator, "Wanjiru Kamau", ["pi", "researcher"], inst["IT"])
    rome = _person(client, operator, "Reviewer Rome", ["reviewer"], inst["KE"])
    paris = _person(client, operator, "Reviewer Paris", ["reviewer"], inst["FR"])
    call = client.post(
        "/api/v1/calls",
        json={
            "title": "Multilingual speech models",
            "description": "Open speech recognition for under-served languages.",
            "pool": "open_calls",
            "budget": {"H100": "100000", "MI300X": "20000"},
            "opens_at": _iso(minutes=-5),
            "closes_at": _iso(days=30),
            "eligible_kinds": ["university", "research_lab"],
            "rubric": [
                {"criterion": "excellence", "weight": 2},
                {"criterion": "openness", "weight": 1},
            ],
        },
        headers=operator,
    )
    assert call.status_code == 201, call.text
    return {"inst": inst, "pi": pi, "rome": rome, "paris": paris, "call": call.json()["id"]}


def _form(world: dict[str, Any], csrf: str, **overrides: Any) -> dict[str, Any]:
    return {
        "csrf": csrf,
        "title": "Speech models for Swahili <script>",
        "abstract": "Open ASR for East African languages.",
        "institution_id": str(world["inst"]["IT"]),
        "hours_class": ["H100", "MI300X"],
        "hours": ["4000", ""],
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=365)).isoformat(),
        "level": "2",
        "datasets": "common-voice-sw\nfleurs",
        "models": "",
        "weights": "true",
        "code": "true",
        "licence": "Apache-2.0",
        **overrides,
    }


def _submit(client: TestClient, world: dict[str, Any], **overrides: Any) -> Any:
    page = client.get(f"/calls/{world['call']}")
    return client.post(
        f"/calls/{world['call']}/proposals",
        data=_form(world, csrf_of(page.text), **overrides),
        follow_redirects=False,
    )


def _proposal_ids(client: TestClient, app: Any) -> list[str]:
    return [e["subject"] for e in record_entries(client, app, type="allocation:proposal:submitted")]


def _decide(
    client: TestClient, operator: dict[str, str], world: dict[str, Any], *, hours: str = "4000"
) -> dict[str, Any]:
    """Submit through the API, review, and decide to award: the allocation (active, or
    awaiting the council when `hours` is above its threshold)."""
    body = {
        "call_id": world["call"],
        "institution_id": world["inst"]["IT"],
        "title": "Speech models for Swahili",
        "abstract": "Open ASR for East African languages, awarded.",
        "requested": {"H100": hours},
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=365)).isoformat(),
        "release_plan": {"weights": True, "data": True, "code": True, "licence": "Apache-2.0"},
    }
    pid = client.post("/api/v1/proposals", json=body, headers=auth(world["pi"][1])).json()["id"]
    paris_id, paris_token = world["paris"]
    client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": paris_id}, headers=operator
    )
    client.post(
        f"/api/v1/proposals/{pid}/review",
        json={"scores": {"excellence": 4, "openness": 5}},
        headers=auth(paris_token),
    )
    decided = client.post(
        f"/api/v1/proposals/{pid}/decision", json={"award": True}, headers=operator
    ).json()
    return decided["allocation"]


def _award(client: TestClient, operator: dict[str, str], world: dict[str, Any]) -> int:
    """Submit through the API, review, and award: returns the allocation's id."""
    allocation = _decide(client, operator, world)
    assert allocation["status"] == "active", allocation
    return int(allocation["id"])


# Empty states --------------------------------------------------------------------------------


def test_empty_states(client):
    for path, expected in [
        ("/calls", "No call is open right now"),
        ("/projects", "No project holds an active allocation yet"),
        ("/members", "The council has not been founded yet"),
        ("/reviews", "Sign in as a reviewer"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert expected in _text(response.text), path


def test_members_without_usage_lists_entitlements_and_says_so(client, world):
    text = _text(client.get("/members").text)
    assert "No compute has been delivered" in text
    assert "Italy IT 25% 0 — — no usage yet" in text
    assert "<svg" not in client.get("/members").text.split("<main", 1)[1]


# Calls and the proposal form -----------------------------------------------------------------


def test_the_calls_and_a_call_page_show_pool_budget_window_eligibility_and_rubric(client, world):
    listing = _text(client.get("/calls").text)
    assert "Call 1: Multilingual speech models" in listing
    assert "Open calls" in listing and "100 000 H100 hours" in listing
    assert "Open to research labs, universities in any country" in listing
    assert "excellence × 2" in listing
    page = client.get(f"/calls/{world['call']}")
    text = _text(page.text)
    assert "Open speech recognition" in text
    assert "Sign in as a principal investigator" in text
    assert 'name="title"' not in page.text  # no form for the public


def test_a_pi_submits_the_form_and_sees_the_confirmation(client, app, world):
    sign_in(client, world["pi"][1])
    page = client.get(f"/calls/{world['call']}")
    assert 'name="hours_class" value="MI300X"' in page.text
    assert '<option value="1" selected>' in page.text  # the PI's own institution
    response = _submit(client, world)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/proposals/\d+\?submitted=1", location)
    confirmation = client.get(location)
    assert confirmation.status_code == 200
    text = _text(confirmation.text)
    assert "Submitted: proposal" in text
    assert "Speech models for Swahili <script>" in text
    assert "<script>" not in confirmation.text  # escaped
    assert "4 000 H100 hours" in text and "CL-2" in text and "Sapienza" in text
    assert "weights, code under Apache-2.0" in text
    assert "common-voice-sw" in text and "fleurs" in text
    assert len(_proposal_ids(client, app)) == 1
    # The proposal is confidential: the public gets a refusal, not the text.
    client.cookies.clear()
    refused = client.get(location)
    assert refused.status_code in (401, 403)
    assert "Swahili" not in refused.text


def test_the_form_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    client, app, world
):
    sign_in(client, world["pi"][1])
    page = client.get(f"/calls/{world['call']}")
    data = _form(world, csrf_of(page.text))
    before = len(record_entries(client, app))
    for csrf in (None, "0" * 64):
        body = {k: v for k, v in data.items() if k != "csrf"}
        if csrf:
            body["csrf"] = csrf
        response = client.post(f"/calls/{world['call']}/proposals", data=body)
        assert response.status_code == 403
        assert "nothing was changed" in response.text
    cross_site = client.post(
        f"/calls/{world['call']}/proposals", data=data, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert len(record_entries(client, app)) == before


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"hours": ["", ""]}, 422, "Requested hours: give hours for at least one"),
        ({"hours": ["-5", ""]}, 422, "Requested H100 hours: input should be greater than 0"),
        ({"hours": ["lots", ""]}, 422, "Requested H100 hours"),
        ({"hours": ["2000000", ""]}, 422, "at most"),
        ({"ends_on": TODAY.isoformat()}, 422, "The end date must be after the start date"),
        ({"title": ""}, 422, "Title: string should have at least 1 character"),
        ({"institution_id": ""}, 422, "Institution"),
        ({"institution_id": "999"}, 404, "No institution with id 999"),
        ({"level": "9"}, 422, "Containment level"),
        ({"licence": ""}, 422, "Licence"),
        ({"hours_class": ["A100", "MI300X"]}, 422, "The call offers no A100 hours"),
    ],
)
def test_a_bad_value_re_renders_the_form_with_the_reason_and_what_was_typed(
    client, app, world, overrides, status, reason
):
    sign_in(client, world["pi"][1])
    response = _submit(client, world, **overrides)
    assert response.status_code == status, response.text[:500]
    alert = re.search(r'<p class="error-text" role="alert">(.*?)</p>', response.text, re.S)
    assert alert, response.text[:2000]
    assert reason in html.unescape(alert.group(1))
    assert "Nothing was submitted" in alert.group(1)
    assert "Open ASR for East African languages." in response.text  # what was typed stays
    assert 'name="title"' in response.text
    assert _proposal_ids(client, app) == []


def test_a_reviewer_or_the_public_cannot_submit(client, app, world):
    csrf = csrf_of(client.get("/signin").text)
    response = client.post(f"/calls/{world['call']}/proposals", data=_form(world, csrf))
    assert response.status_code in (401, 403)
    sign_in(client, world["rome"][1])
    page = client.get(f"/calls/{world['call']}")
    assert "without the PI role" in _text(page.text)
    response = _submit(client, world)
    assert response.status_code == 403
    assert "principal investigators" in response.text
    assert _proposal_ids(client, app) == []


# Reviews -------------------------------------------------------------------------------------


def test_the_reviewer_queue_scores_a_proposal(client, app, operator, world):
    sign_in(client, world["pi"][1])
    location = _submit(client, world).headers["location"]
    pid = int(location.split("/")[2].split("?")[0])
    rome_id, rome_token = world["rome"]
    assigned = client.post(
        f"/api/v1/proposals/{pid}/reviewers", json={"reviewer_id": rome_id}, headers=operator
    )
    assert assigned.status_code == 201, assigned.text
    client.cookies.clear()
    sign_in(client, rome_token)
    queue = client.get("/reviews")
    text = _text(queue.text)
    assert "Proposal 1: Speech models for Swahili <script>" in text and "To score" in text
    assert ">Reviews</a>" in queue.text  # the nav link for reviewers

    # A missing criterion: the reason, nothing recorded.
    refused = client.post(
        f"/reviews/{pid}",
        data={"csrf": csrf_of(queue.text), "criterion": ["excellence"], "score": ["5"]},
    )
    assert refused.status_code == 422
    assert "Score exactly the call's criteria" in _text(refused.text)
    out_of_range = client.post(
        f"/reviews/{pid}",
        data={
            "csrf": csrf_of(queue.text),
            "criterion": ["excellence", "openness"],
            "score": ["9", "1"],
        },
    )
    assert out_of_range.status_code == 422
    assert record_entries(client, app, type="allocation:review:submitted") == []

    scored = client.post(
        f"/reviews/{pid}",
        data={
            "csrf": csrf_of(queue.text),
            "criterion": ["excellence", "openness"],
            "score": ["5", "4"],
            "comment": "Strong & open.",
        },
        follow_redirects=False,
    )
    assert scored.status_code == 303
    after = client.get(scored.headers["location"])
    text = _text(after.text)
    assert "Your scores for proposal 1 are recorded" in text and "Scored" in text
    assert '<option value="5" selected>' in after.text
    assert "Strong &amp; open." in after.text
    assert len(record_entries(client, app, type="allocation:review:submitted")) == 1

    # Someone not assigned is refused with the reason.
    client.cookies.clear()
    sign_in(client, world["paris"][1])
    page = client.get("/reviews")
    assert "No proposal is assigned to you yet" in _text(page.text)
    refused = client.post(
        f"/reviews/{pid}",
        data={
            "csrf": csrf_of(page.text),
            "criterion": ["excellence", "openness"],
            "score": ["1", "1"],
        },
    )
    assert refused.status_code == 403


# Projects and member states ------------------------------------------------------------------


def test_projects_lists_an_award(client, operator, world):
    allocation_id = _award(client, operator, world)
    held = client.post(
        f"/api/v1/allocations/{allocation_id}/reservations",
        json={"accelerator": "H100", "hours": "900", "job": "job-1"},
        headers=operator,
    ).json()
    client.post(f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "800"},
                headers=operator)  # fmt: skip
    text = _text(client.get("/projects").text)
    assert "Speech models for Swahili" in text
    assert "Open ASR for East African languages, awarded." in text
    assert "Country IT" in text and "4 000 H100 hours" in text and "Open calls" in text
    # One way of writing hours on the page: "800 of 4 000", not "800.00 of 4000".
    assert "H100: 800 of 4 000 hours drawn" in text


def test_members_shows_the_chart_once_usage_is_settled(client, operator, world):
    allocation_id = _award(client, operator, world)
    held = client.post(
        f"/api/v1/allocations/{allocation_id}/reservations",
        json={"accelerator": "H100", "hours": "500", "job": "job-1"},
        headers=operator,
    ).json()
    settled = client.post(
        f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "400"}, headers=operator
    )
    assert settled.status_code == 200, settled.text
    page = client.get("/members")
    assert page.status_code == 200
    assert page.text.count('class="share-panel"') == 4
    assert '<rect class="band"' in page.text
    # One quarter with usage is no series: each state's share is a bar, not a lone point.
    assert '<rect class="point bar outside"' in page.text
    assert '<circle class="point' not in page.text
    text = _text(page.text)
    assert "Italy IT 25% 400 100.00% +75.00 Outside the band" in text, text
    assert "France FR 25% 0 0.00% -25.00 Outside the band" in text


def test_the_share_chart_draws_the_band_and_leaves_gaps_for_quarters_without_usage():
    chart = share_chart(
        ["Q1", "Q2", "Q3", "Q4"],
        [("IT", "Italy", Decimal("40"), [None, Decimal(50), Decimal(40), None], [False] * 4)],
        tolerance=Decimal("5"),
    )
    panel = chart.panels[0]
    assert panel.band_height > 0 and panel.band_top < panel.entitled_y
    assert panel.path.startswith("M") and panel.path.count("L") == 1
    assert [p.y is None for p in panel.points] == [True, False, False, True]
    assert chart.series  # two quarters with usage: a line
    alone = share_chart(
        ["Q1", "Q2"], [("IT", "Italy", Decimal("40"), [None, Decimal(50)], [False] * 2)],
        tolerance=Decimal("5"),
    )  # fmt: skip
    assert not alone.series and alone.baseline > alone.panels[0].points[1].y
    spans = _last_quarters(date(2026, 2, 10))
    assert spans[0] == (date(2025, 4, 1), date(2025, 7, 1))
    assert spans[-1] == (date(2026, 1, 1), date(2026, 4, 1))


# Junk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/calls/0", 400),
        ("/calls/abc", 400),
        ("/calls/999", 404),
        ("/calls/99999999999999999999999", 400),
        ("/proposals/999", 403),  # proposals are confidential: the public reads none
        ("/proposals/x", 400),
        ("/reviews?scored=abc", 400),
    ],
)
def test_junk_addresses_get_error_pages_not_500s(client, world, path, status):
    response = client.get(path)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")


def test_junk_posts_get_error_pages_and_change_nothing(client, app, world):
    sign_in(client, world["pi"][1])
    csrf = csrf_of(client.get(f"/calls/{world['call']}").text)
    before = len(record_entries(client, app))
    for path, status in [
        ("/calls/999/proposals", 404),
        ("/calls/abc/proposals", 400),
        ("/reviews/999", 403),  # a PI, not a reviewer
        ("/reviews/0", 400),
    ]:
        response = client.post(path, data=_form(world, csrf))
        assert response.status_code == status, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
    assert len(record_entries(client, app)) == before
