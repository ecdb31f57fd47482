"""The fleet page (public, with its chart), a member's jobs list and one job's page with its
history, output and cancel form; what the public and outsiders may not see."""

from __future__ import annotations

from commonlab.portal.compute_views import fleet_bars
from tests.compute.helpers import award_project, run_until
from tests.portal.helpers import csrf_of, sign_in


def test_the_fleet_page_draws_each_partition_on_one_scale(client, operator):
    client.put(
        "/api/v1/fleet",
        json={
            "sites": [{"name": "bologna", "country": "IT"}],
            "partitions": [
                {
                    "name": "booster",
                    "site": "bologna",
                    "accelerator": "H100",
                    "nodes": 10,
                    "accelerators_per_node": 4,
                }
            ],
        },
        headers=operator,
    )
    client.post("/api/v1/fleet/nodes/booster-9/state", json={"state": "down"}, headers=operator)
    page = client.get("/fleet")
    assert page.status_code == 200
    assert "booster · H100" in page.text and "local · cpu" in page.text
    assert "0/40 · CL-1" in page.text and "out of service" in page.text
    bars = {b.name: b for b in fleet_bars(client.get("/api/v1/fleet").json()["partitions"])}
    assert bars["booster"].idle_w + bars["booster"].down_w == 420  # the largest spans the width
    assert bars["booster"].down_w == 42  # one node of ten is down


def test_fleet_bars_of_an_empty_fleet():
    assert fleet_bars([]) == []


def test_a_member_sees_their_jobs_and_cancels_one(client, operator, app):
    project = award_project(client, operator)
    job = client.post(
        "/api/v1/jobs",
        json={
            "project": project.name,
            "name": "long",
            "command": "echo '<b>not markup</b>'; sleep 60",
            "accelerator": "cpu",
        },
        headers=project.pi_auth,
    ).json()
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"running"})
    assert client.get("/jobs", follow_redirects=False).status_code == 303  # sign in first
    sign_in(client, project.pi_auth["Authorization"].split()[1])
    listing = client.get("/jobs")
    assert f'href="/jobs/{job["id"]}"' in listing.text and "running" in listing.text
    page = client.get(f"/jobs/{job['id']}")
    assert page.status_code == 200
    assert "Cancel this job" in page.text and "admitted" in page.text
    csrf = csrf_of(page.text)
    refused = client.post(f"/jobs/{job['id']}/cancel", data={"csrf": "forged"})
    assert refused.status_code == 403
    done = client.post(f"/jobs/{job['id']}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303
    run_until(app.state.jobs, client, job["id"], project.pi_auth, {"cancelled"})
    page = client.get(f"/jobs/{job['id']}")
    assert "&lt;b&gt;not markup&lt;/b&gt;" in page.text  # output is escaped
    assert "Cancel this job" not in page.text


def test_outsiders_and_the_public_do_not_see_a_job(client, operator):
    project = award_project(client, operator)
    job = client.post(
        "/api/v1/jobs",
        json={"project": project.name, "command": "true", "accelerator": "cpu"},
        headers=project.pi_auth,
    ).json()
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    sign_in(client, project.outsider_auth["Authorization"].split()[1])
    assert client.get(f"/jobs/{job['id']}").status_code == 403
    assert client.get("/jobs/0").status_code == 400
    assert client.get("/jobs/99999").status_code == 404
