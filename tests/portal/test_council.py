"""The council's portal pages through the ASGI app (SQLite and PostgreSQL): the council, a
motion with its tally and roll call, a delegate's vote form and its refusals, the
regulations with their history and diffs, and error pages for junk addresses."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import FOUNDERS, auth, close_when_due, found_council, record_entries
from tests.portal.helpers import csrf_of, sign_in

NEW_REGULATION = {
    "title": "First regulation of the council",
    "capacity": {
        "national_pools": "45",
        "open_calls": "35",
        "smes_and_public_bodies": "15",
        "directors_reserve": "5",
    },
}


# Helpers -------------------------------------------------------------------------------------


def _text(page: str) -> str:
    """The page's words: inline tags vanish, every other tag separates words."""
    page = re.sub(r"</?(?:a|strong|em|code|span|time)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _is_html(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html"), response.text[:200]


def _table(client: TestClient, headers: dict[str, str], kind: str, payload: dict[str, Any]) -> int:
    body = {
        "kind": kind,
        "title": f"A {kind.replace('_', ' ')} motion",
        "text": "Why the council should agree.",
        "payload": payload,
        "closes_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    }
    response = client.post("/api/v1/motions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _api_vote(client: TestClient, headers: dict[str, str], motion_id: int, choice: str) -> None:
    response = client.post(
        f"/api/v1/motions/{motion_id}/votes", json={"choice": choice}, headers=headers
    )
    assert response.status_code == 201, response.text


def _close(app: Any, motion_id: int) -> None:
    close_when_due(app.state.db, motion_id)


def _votes(client: TestClient, motion_id: int) -> list[tuple[str, str]]:
    votes = client.get(f"/api/v1/motions/{motion_id}").json()["votes"]
    return [(v["member"], v["choice"]) for v in votes]


@pytest.fixture
def council(client: TestClient, operator: dict[str, str]) -> dict[str, str]:
    """A founded council of five, one delegate each; returns code → the delegate's token."""
    return found_council(client, operator, FOUNDERS)


@pytest.fixture
def admission(client: TestClient, council: dict[str, str]) -> int:
    """An open motion to admit Estonia with a new scale, with Italy's yes already cast."""
    scale = {"IT": "22", "FR": "22", "DE": "20", "ES": "13", "SE": "13", "EE": "10"}
    motion_id = _table(
        client,
        auth(council["SE"]),
        "admit_member",
        {"code": "EE", "name": "Estonia", "scale": scale},
    )
    _api_vote(client, auth(council["IT"]), motion_id, "yes")
    return motion_id


# Empty states --------------------------------------------------------------------------------


def test_pages_explain_an_unfounded_council(client):
    council = client.get("/council")
    assert council.status_code == 200
    _is_html(council)
    text = _text(council.text)
    assert "The council has not been founded yet: an operator founds it" in text
    assert "No motions yet" in text
    assert "No motion has been decided yet" in text
    assert 'role="img"' not in council.text  # no chart pretending to show a scale
    assert 'aria-current="page">Council<' in council.text

    regulations = client.get("/regulations")
    assert regulations.status_code == 200
    text = _text(regulations.text)
    assert "In force: Provisional regulation" in text
    assert "This is the provisional regulation every new facility starts from" in text
    assert "No regulation has been adopted yet" in text
    for label in ("Member-state national pools 50%", "Open calls 30%", "Director's reserve 5%"):
        assert label in text
    assert re.search(r"CL-4 30 days 3 never required", text)
    for response in (council, regulations):
        assert "<script" not in response.text.lower()
        assert "default-src 'none'" in response.headers["content-security-policy"]


# The council and a motion ----------------------------------------------------------------------


def test_the_council_lists_members_delegates_shares_and_open_motions(client, admission):
    page = client.get("/council").text
    text = _text(page)
    assert "Italy IT Delegate of Italy 25%" in text
    assert "Sweden SE Delegate of Sweden 15%" in text
    assert 'role="img"' in page and "Each member state&#39;s share of contributions" in page
    assert re.search(r"<td>Germany \(DE\)</td><td class=\"num\">20%</td>", page)
    assert f'href="/motions/{admission}"' in page
    assert f"Motion {admission}: A admit member motion" in text
    assert "Yes 1 No 0 Abstain 0 Not voted 4" in text
    assert "No motion has been decided yet" in text


def test_a_motion_shows_its_rule_payload_tally_and_roll_call(client, admission):
    response = client.get(f"/motions/{admission}")
    assert response.status_code == 200
    _is_html(response)
    text = _text(response.text)
    assert f"Motion {admission}: A admit member motion Open" in text
    assert "Admit a member state, tabled by Delegate of Sweden for SE." in text
    assert "Double majority: passes with yes from a majority of all member states" in text
    assert "Quorum: at least half of the member states must take part (3 of 5" in text
    assert "Admit Estonia EE as a member state, with this contribution scale" in text
    assert "Italy IT 25% 22%" in text and "Estonia EE — 10%" in text
    assert "Yes 1 No 0 Abstain 0 Not voted 4" in text
    assert "If voting closed now the motion would fail: no quorum" in text
    assert re.search(r"Roll call .* IT yes Delegate of Italy \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    # The public sees the page and no vote form.
    assert f'action="/motions/{admission}/vote"' not in response.text
    assert "Your vote for" not in text


def test_the_public_and_non_delegates_get_no_vote_form_and_cannot_vote(
    client, app, admission, operator_token
):
    csrf = csrf_of(client.get("/signin").text)
    refused = client.post(f"/motions/{admission}/vote", data={"csrf": csrf, "choice": "no"})
    assert 400 <= refused.status_code < 500
    _is_html(refused)
    assert 'role="alert"' in refused.text and "Nothing was changed" in refused.text

    sign_in(client, operator_token)  # an operator, not a delegate
    page = client.get(f"/motions/{admission}").text
    assert f'action="/motions/{admission}/vote"' not in page
    refused = client.post(
        f"/motions/{admission}/vote", data={"csrf": csrf_of(page), "choice": "no"}
    )
    assert refused.status_code == 403
    assert "Only delegates may vote. Nothing was changed." in _text(refused.text)
    assert _votes(client, admission) == [("IT", "yes")]
    assert len(record_entries(client, app, type="governance:vote:cast")) == 1


def test_a_delegate_votes_through_the_form_and_it_is_on_the_record(client, app, council, admission):
    sign_in(client, council["FR"])
    page = client.get(f"/motions/{admission}")
    assert page.headers["cache-control"] == "no-store"
    text = _text(page.text)
    assert "Your vote for FR" in text and "FR has not voted yet" in text
    assert f'action="/motions/{admission}/vote"' in page.text
    for choice in ("yes", "no", "abstain"):
        assert f'name="choice" value="{choice}"' in page.text

    response = client.post(
        f"/motions/{admission}/vote",
        data={"csrf": csrf_of(page.text), "choice": "yes"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/motions/{admission}?voted=yes"
    after = _text(client.get(response.headers["location"]).text)
    assert "Recorded: FR votes yes on this motion" in after
    assert "FR has voted yes; you may change it" in after
    assert "Yes 2 No 0 Abstain 0 Not voted 3" in after
    assert re.search(r"FR yes Delegate of France", after)
    assert sorted(_votes(client, admission)) == [("FR", "yes"), ("IT", "yes")]
    entries = record_entries(client, app, type="governance:vote:cast")
    assert entries[-1]["subject"] == f"motion/{admission}"
    assert entries[-1]["data"] == {"member": "FR", "choice": "yes", "changed": False}

    # Changing the vote is allowed until it closes; the address cannot fake the notice.
    changed = client.post(
        f"/motions/{admission}/vote",
        data={"csrf": csrf_of(page.text), "choice": "abstain"},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert "Recorded" not in client.get(f"/motions/{admission}?voted=no").text
    assert record_entries(client, app, type="governance:vote:cast")[-1]["data"]["changed"]


def test_a_vote_without_the_csrf_token_is_refused_and_changes_nothing(
    client, app, council, admission
):
    sign_in(client, council["FR"])
    before = len(record_entries(client, app, type="governance"))
    for data in ({"choice": "yes"}, {"choice": "yes", "csrf": "0" * 64}):
        response = client.post(f"/motions/{admission}/vote", data=data, follow_redirects=False)
        assert response.status_code == 403
        _is_html(response)
        assert "nothing was changed" in _text(response.text)
    cross_site = client.post(
        f"/motions/{admission}/vote",
        data={"choice": "yes", "csrf": csrf_of(client.get(f"/motions/{admission}").text)},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert _votes(client, admission) == [("IT", "yes")]
    assert len(record_entries(client, app, type="governance")) == before


def test_voting_the_same_way_twice_shows_the_reason_and_changes_nothing(
    client, app, council, admission
):
    sign_in(client, council["IT"])  # Italy already voted yes through the API
    page = client.get(f"/motions/{admission}").text
    assert "IT has voted yes" in _text(page)
    response = client.post(
        f"/motions/{admission}/vote", data={"csrf": csrf_of(page), "choice": "yes"}
    )
    assert response.status_code == 409
    _is_html(response)
    alert = re.search(r'<p class="error-text" role="alert">(.*?)</p>', response.text, re.S)
    assert alert is not None
    assert html.unescape(alert.group(1)) == (
        f"IT already voted yes on motion {admission}. Nothing was changed."
    )
    # The page is re-rendered in full, form included, so the delegate can choose again.
    assert f'action="/motions/{admission}/vote"' in response.text
    assert len(record_entries(client, app, type="governance:vote:cast")) == 1


def test_a_closed_motion_shows_its_result_and_roll_call(client, app, council, admission):
    for code, choice in (("FR", "yes"), ("DE", "yes"), ("ES", "no"), ("SE", "abstain")):
        _api_vote(client, auth(council[code]), admission, choice)
    _close(app, admission)
    sign_in(client, council["FR"])
    page = client.get(f"/motions/{admission}")
    text = _text(page.text)
    assert "Passed" in text
    assert "Passed: Double majority: 3 of 6 states" not in text  # the states at closing: 5
    assert "Passed: Double majority: 3 of 5 states, 70% of contributions." in text
    assert "Yes 3 No 1 Abstain 1 Not voted 0" in text
    # The scale it replaced, not the one in force now (which is the one it adopted).
    assert "State Before Adopted" in text and "Italy IT 25% 22%" in text
    assert "(3 of 5, abstentions included)" in text  # the quorum among the states at closing
    assert re.search(r"Roll call .* DE yes Delegate of Germany", text)
    assert "ES no Delegate of Spain" in text and "SE abstain Delegate of Sweden" in text
    assert f'action="/motions/{admission}/vote"' not in page.text

    late = client.post(
        f"/motions/{admission}/vote", data={"csrf": csrf_of(page.text), "choice": "no"}
    )
    assert late.status_code == 409
    assert f"Motion {admission} is passed: its vote is over" in _text(late.text)

    council_page = _text(client.get("/council").text)
    assert "Estonia EE" in council_page and f"motion {admission}" in council_page
    assert "No motion is open" in council_page
    assert re.search(
        rf"{admission} A admit member motion Admit a member state Passed", council_page
    )
    assert f'href="/motions/{admission}#roll-call"' in client.get("/council").text


def test_a_regulation_motion_shows_its_diff_and_once_adopted_the_history(client, app, council):
    motion_id = _table(
        client, auth(council["DE"]), "adopt_regulation", {"regulation": NEW_REGULATION}
    )
    text = _text(client.get(f"/motions/{motion_id}").text)
    assert "Adopt First regulation of the council as the facility's regulation" in text
    assert "Compared with version 0 (the provisional regulation), in force now" in text
    assert "capacity.national_pools 50 45" in text
    assert "capacity.open_calls 30 35" in text
    assert "title Provisional regulation First regulation of the council" in text
    assert "capacity.directors_reserve" not in text  # unchanged fields are not listed

    for code in ("IT", "FR", "DE"):
        _api_vote(client, auth(council[code]), motion_id, "yes")
    _close(app, motion_id)
    assert "Compared with version 0 (the provisional regulation), in force when voting opened" in (
        _text(client.get(f"/motions/{motion_id}").text)
    )

    page = client.get("/regulations").text
    text = _text(page)
    assert "In force: First regulation of the council" in text
    assert f"by motion {motion_id}" in text
    assert "Member-state national pools 45%" in text
    assert f'href="/motions/{motion_id}"' in page
    assert 'href="/regulations/diff?from=0&amp;to=1"' in page
    sha = client.get("/api/v1/regulations/in-force").json()["sha256"]
    assert sha in page

    diff = client.get("/regulations/diff", params={"from": 0, "to": 1})
    assert diff.status_code == 200
    text = _text(diff.text)
    assert "From version 0 to version 1" in text
    assert "capacity.national_pools 50 45" in text
    assert "capacity.directors_reserve" not in text
    same = _text(client.get("/regulations/diff?from=1&to=1").text)
    assert "That is the same version twice" in same


# Junk addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/motions/0", 400),
        ("/motions/abc", 400),
        ("/motions/-1", 400),
        ("/motions/999", 404),
        (f"/motions/{2**60}", 400),
        ("/motions/1?voted=maybe", 400),
        ("/regulations/diff", 400),
        ("/regulations/diff?from=x&to=1", 400),
        ("/regulations/diff?from=0&to=7", 404),
        ("/regulations/diff?from=0&to=99999999999", 400),
        ("/council/nothing", 404),
    ],
)
def test_junk_addresses_get_error_pages_not_500s(client, council, path, status):
    response = client.get(path)
    assert response.status_code == status, response.text[:300]
    _is_html(response)
    assert "<h1>" in response.text


def test_junk_votes_get_error_pages_and_change_nothing(client, app, council, admission):
    sign_in(client, council["FR"])
    csrf = csrf_of(client.get(f"/motions/{admission}").text)
    for path, data, status in [
        ("/motions/999/vote", {"csrf": csrf, "choice": "yes"}, 404),
        (f"/motions/{admission}/vote", {"csrf": csrf, "choice": "maybe"}, 400),
        (f"/motions/{admission}/vote", {"csrf": csrf}, 400),
        ("/motions/abc/vote", {"csrf": csrf, "choice": "yes"}, 400),
    ]:
        response = client.post(path, data=data)
        assert response.status_code == status, (path, data, response.text[:300])
        _is_html(response)
    assert client.get(f"/motions/{admission}/vote").status_code == 405
    assert _votes(client, admission) == [("IT", "yes")]
    assert len(record_entries(client, app, type="governance:vote:cast")) == 1


def test_the_home_page_counts_member_states_once_the_council_is_founded(client, operator):
    before = client.get("/").text
    assert "No member states yet" in before
    founders = [
        {"code": "IT", "name": "Italy", "contribution": "25"},
        {"code": "FR", "name": "France", "contribution": "25"},
        {"code": "DE", "name": "Germany", "contribution": "25"},
        {"code": "ES", "name": "Spain", "contribution": "25"},
    ]
    assert (
        client.post("/api/v1/members", json={"members": founders}, headers=operator).status_code
        == 201
    )
    after = client.get("/").text
    assert "No member states yet" not in after
    assert "4</span>" in after and "Germany" in after and 'href="/council"' in after
