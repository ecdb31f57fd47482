"""A project's page, /me and the reviewers offered on a proposal, through the ASGI app (SQLite
and PostgreSQL): the public sees what is public about a project, its members see its people,
tranches, hours per class, jobs and outputs; /me lists a person's projects, proposals and
reviews; an operator assigns a suggested reviewer with one explicit form."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

from commonlab.allocation.service import Tranche
from commonlab.portal.allocation_views import hours_text, tranche_chart
from tests.artifacts.helpers import push
from tests.compute.helpers import award_project, run_until
from tests.helpers import auth, record_entries
from tests.portal import test_allocation_pages as pages
from tests.portal.helpers import csrf_of, sign_in
from tests.portal.test_allocation_pages import _award, _decide, _text

world = pages.world  # a fixture: a founded council, a PI, two reviewers and an open call


def _model(client, headers, project, name, visibility):
    made = client.post(
        "/api/v1/artifacts/repos",
        json={"kind": "model", "name": name, "project": project, "visibility": visibility},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    repo = f"models/{made.json()['repo_id']}"
    pushed = push(client, headers, repo, {"README.md": f"# {name}\n".encode()})
    assert pushed.status_code == 201, pushed.text
    return repo


def test_members_see_a_projects_insides_and_the_public_its_public_face(client, app, operator):
    project = award_project(client, operator, budget={"cpu": "10"})
    job = client.post(
        "/api/v1/jobs",
        json={"project": project.name, "name": "train", "command": "true", "accelerator": "cpu"},
        headers=project.pi_auth,
    ).json()
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"succeeded"})
    public = _model(client, project.pi_auth, project.name, "open-asr", "public")
    inner = _model(client, project.pi_auth, project.name, "draft-asr", "project")

    page = client.get(f"/projects/{project.name}")  # the public
    assert page.status_code == 200, page.text[:300]
    text = _text(page.text)
    assert "Small models" in text and "Jobs for tests." in text and "10 cpu hours" in text
    assert "Members" not in text and "Quarterly tranches" not in text
    assert f'href="/jobs/{job["id"]}"' not in page.text
    assert f'href="/artifacts/{public}/versions/1"' in page.text
    assert inner not in page.text  # a project-only model is not named to the public

    sign_in(client, project.outsider_auth["Authorization"].split()[1])
    outsider = client.get(f"/projects/{project.name}").text
    assert "Quarterly tranches" not in outsider and inner not in outsider

    sign_in(client, project.pi_auth["Authorization"].split()[1])
    page = client.get(f"/projects/{project.name}")
    text = _text(page.text)
    assert "Members" in text and project.pi["name"] in text and "PI" in text
    assert f'href="/jobs/{job["id"]}"' in page.text and "succeeded" in text
    assert f'href="/artifacts/{inner}/versions/1"' in page.text
    assert '<svg class="tranche-chart"' in page.text
    charged = client.get(f"/api/v1/jobs/{job['id']}", headers=project.pi_auth).json()
    tranches = client.get(f"/api/v1/allocations/{project.allocation_id}/tranches").json()
    assert tranches[0]["drawn"] == f"{float(charged['charged_hours']):.2f}"
    # The page's first tranche row says what the API says.
    row = re.search(r"<th scope=\"row\">Q1 \(now\)</th>(.*?)</tr>", page.text, re.S)
    assert row, page.text
    cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]
    assert cells[:3] == ["cpu", tranches[0]["starts_on"], tranches[0]["ends_on"]]
    assert cells[4] == hours_text(Decimal(tranches[0]["drawn"]))


def test_an_uncleared_member_of_a_contained_project_sees_only_its_public_face(client, operator):
    project = award_project(client, operator, level=3)
    sign_in(client, project.member_auth["Authorization"].split()[1])  # a member, no clearance
    text = _text(client.get(f"/projects/{project.name}").text)
    assert "Small models" in text
    assert "Members" not in text and "Quarterly tranches" not in text


def test_an_unknown_or_junk_project_is_an_error_page(client, world):
    assert client.get("/projects/proj-999").status_code == 404
    response = client.get("/projects/%3Cscript%3E")
    assert response.status_code == 400, response.text[:200]
    assert response.headers["content-type"].startswith("text/html")


def test_projects_links_each_award_to_its_page(client, operator, world):
    allocation_id = _award(client, operator, world)
    name = client.get(f"/api/v1/allocations/{allocation_id}").json()["project"]
    assert f'href="/projects/{name}"' in client.get("/projects").text


def test_me_lists_projects_with_hours_proposals_and_reviews(client, operator, world):
    allocation_id = _award(client, operator, world)
    held = client.post(
        f"/api/v1/allocations/{allocation_id}/reservations",
        json={"accelerator": "H100", "hours": "500", "job": "job-1"},
        headers=operator,
    ).json()
    client.post(
        f"/api/v1/ledger/{held['reservation']}/settle", json={"hours": "400"}, headers=operator
    )
    name = client.get(f"/api/v1/allocations/{allocation_id}").json()["project"]
    sign_in(client, world["pi"][1])
    text = _text(client.get("/me").text)
    assert f"Speech models for Swahili {name} PI: 400 of 4 000 hours drawn, 3 600 left" in text
    assert "Your proposals Proposal 1: Speech models for Swahili awarded" in text
    assert "Reviews assigned to you" not in text  # she is no reviewer
    assert f'href="/projects/{name}"' in client.get("/me").text

    sign_in(client, world["paris"][1])
    text = _text(client.get("/me").text)
    assert "Reviews assigned to you Proposal 1: Speech models for Swahili · scored" in text
    assert "You belong to no project yet" in text


def test_an_operator_assigns_a_suggested_reviewer_and_a_pi_is_offered_none(
    client, app, operator, operator_token, world
):
    body = {
        "call_id": world["call"],
        "institution_id": world["inst"]["IT"],
        "title": "Speech models for Swahili",
        "abstract": "Open ASR.",
        "requested": {"H100": "4000"},
        "starts_on": "2030-01-01",
        "ends_on": "2031-01-01",
        "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"},
    }
    pid = client.post("/api/v1/proposals", json=body, headers=auth(world["pi"][1])).json()["id"]
    sign_in(client, world["pi"][1])
    assert "Suggested reviewers" not in client.get(f"/proposals/{pid}").text

    sign_in(client, operator_token)
    page = client.get(f"/proposals/{pid}")
    text = _text(page.text)
    assert "Suggested reviewers" in text
    assert "Assign Reviewer Paris" in text and "Assign Reviewer Rome" in text
    rome_id = world["rome"][0]
    done = client.post(
        f"/proposals/{pid}/reviewers",
        data={"csrf": csrf_of(page.text), "reviewer_id": str(rome_id)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    after = client.get(done.headers["location"])
    assert "Assign Reviewer Rome" not in after.text and "Assign Reviewer Paris" in after.text
    proposal = client.get(f"/api/v1/proposals/{pid}", headers=operator).json()
    assert [r["reviewer_id"] for r in proposal["reviews"]] == [rome_id]
    assert len(record_entries(client, app, type="allocation:review:assigned")) == 1

    again = client.post(
        f"/proposals/{pid}/reviewers",
        data={"csrf": csrf_of(page.text), "reviewer_id": str(rome_id)},
    )
    assert again.status_code == 409 and "already reviews" in again.text
    junk = client.post(
        f"/proposals/{pid}/reviewers", data={"csrf": csrf_of(page.text), "reviewer_id": "x"}
    )
    assert junk.status_code == 422 and "choose a reviewer" in _text(junk.text).lower()
    forged = client.post(f"/proposals/{pid}/reviewers", data={"csrf": "0" * 64, "reviewer_id": "1"})
    assert forged.status_code == 403
    proposal = client.get(f"/api/v1/proposals/{pid}", headers=operator).json()
    assert [r["reviewer_id"] for r in proposal["reviews"]] == [rome_id]
    assert len(record_entries(client, app, type="allocation:review:assigned")) == 1


def _tranche(quarter, released, drawn, current=False):
    start = date(2030, 1, 1) + timedelta(days=91 * quarter)
    return Tranche(
        quarter,
        start,
        start + timedelta(days=91),
        "H100",
        Decimal(released),
        Decimal(drawn),
        Decimal(0),
        current,
        None,
    )


def test_the_tranche_chart_scales_to_the_tallest_and_flags_an_overdraw():
    chart = tranche_chart([_tranche(0, "1000", "1100", current=True), _tranche(1, "1000", "0.01")])
    first, second = chart.columns
    assert chart.top == Decimal("1100")
    assert first.drawn_y == 20 and first.overdrawn and not second.overdrawn  # the top margin
    assert first.tranche_height == round((chart.baseline - 20) * 1000 / 1100, 2)
    assert second.drawn_height == 1.5  # a tiny draw stays visible
    assert [c.label for c in chart.columns] == ["Q1", "Q2"] and first.current
    assert (first.released, first.drawn) == ("1\u2009000", "1\u2009100")
    assert tranche_chart([]).columns == ()


def test_a_project_awaiting_the_council_is_its_members_only(client, operator, world):
    decided = _decide(client, operator, world, hours="60000")  # above the council threshold
    assert decided["status"] == "awaiting_council"
    missing = client.get("/projects/proj-999").text
    hidden = client.get(f"/projects/{decided['project']}")
    assert hidden.status_code == 404
    assert _text(hidden.text).replace(decided["project"], "proj-999") == _text(missing)
    sign_in(client, world["pi"][1])
    page = client.get(f"/projects/{decided['project']}")
    assert page.status_code == 200
    assert "awaiting council" in _text(page.text) and "Open ASR for East African" in page.text
