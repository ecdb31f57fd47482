"""A job's page draws the metrics it posted: one small SVG line chart per metric (loss,
learning rate and tokens per second first), each with a title, axis labels and its latest
value as text; a long run is averaged down to a few hundred points; nothing is drawn for a
job that posted none, and the curves are no more visible than the job."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from commonlab.compute import service
from commonlab.compute.service import Curve, Latest
from commonlab.portal.compute_views import metric_chart
from tests.compute.helpers import award_project
from tests.portal.helpers import sign_in


def submit(client, project):
    made = client.post(
        "/api/v1/jobs",
        json={"name": "train", "project": project.name, "command": "sleep 60",
              "accelerator": "cpu"},
        headers=project.pi_auth,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()


def post(client, job, project, points):
    response = client.post(
        f"/api/v1/jobs/{job['id']}/metrics", json={"points": points}, headers=project.pi_auth
    )
    assert response.status_code == 200, response.text


def test_the_job_page_draws_each_metric_with_its_latest_value(client, operator):
    project = award_project(client, operator)
    job = submit(client, project)
    sign_in(client, project.member_auth["Authorization"].split()[1])
    assert '<h2 id="metrics">' not in client.get(f"/jobs/{job['id']}").text  # none yet

    post(client, job, project, [
        {"step": s, "loss": 4.0 / (s + 1), "learning_rate": 1e-3 * (1 - s / 50),
         "tokens_per_second": 1200.0 + s, "zz_custom": 1.0}
        | ({"checkpoint_step": s} if s % 10 == 9 else {})
        for s in range(50)
    ])  # fmt: skip
    page = client.get(f"/jobs/{job['id']}").text
    charts = re.findall(r"<svg viewBox=\"0 0 320 170\".*?</svg>", page, flags=re.S)
    assert len(charts) == 5
    titles = re.findall(r"<title id=\"metric-\d+-title\">([^<]*)</title>", page)
    assert [t.split(" by step")[0] for t in titles] == [
        "Loss", "Learning rate", "Tokens per second", "Checkpoints (step saved)", "zz_custom"
    ]  # fmt: skip
    assert titles[0] == (
        "Loss by step, from 4 at step 0 to 0.08 at step 49; lowest 0.08, highest 4"
    )
    loss = charts[0]
    assert 'role="img"' in loss and ">step</text>" in loss and ">Loss</text>" in loss
    assert loss.count(" L") == 49  # one line through every step
    assert "<strong>Loss</strong>: 0.08 at step 49" in page
    assert "<strong>Tokens per second</strong>: 1249 at step 49" in page
    assert "<script" not in page  # drawn on the server: no JavaScript


def test_a_long_run_is_drawn_from_a_few_hundred_points(client, operator, facility):
    project = award_project(client, operator)
    job = submit(client, project)
    for start in range(0, 3000, 1000):
        post(client, job, project,
             [{"step": s, "loss": 1.0 + (s % 2)} for s in range(start, start + 1000)])  # fmt: skip
    from commonlab.identity.service import authenticate

    with facility.db.session() as db:
        pi = authenticate(db, project.pi_auth["Authorization"].split()[1])
        (curve,) = service.metric_curves(db, pi, job["id"])
    assert 150 <= len(curve.points) <= 201  # the first step alone, then 200 runs
    # The curve spans the run: it starts at the first step (alone) and ends at the latest.
    assert curve.points[0] == (0, 1.0)
    assert curve.points[-1][0] == 2999 and curve.latest.step == 2999
    # Each point between is the mean of a run of steps: alternately 1 and 2, so about 1.5.
    assert all(1.4 <= value <= 1.6 for _, value in curve.points[1:-1])
    assert curve.latest.value == 2.0


def test_the_curves_are_as_hidden_as_the_job(client, operator):
    project = award_project(client, operator)
    job = submit(client, project)
    post(client, job, project, [{"step": 0, "loss": 1.0}])
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    sign_in(client, project.outsider_auth["Authorization"].split()[1])
    page = client.get(f"/jobs/{job['id']}")
    assert page.status_code == 403 and "Loss" not in page.text


def test_one_point_and_a_flat_line_still_draw():
    at = datetime.now(UTC)
    one = metric_chart(Curve("loss", [(7, 2.5)], Latest(7, 2.5, at)))
    assert one.path.startswith("M") and " L" not in one.path
    assert one.x_ticks == ((one.last_x, "7"),) and one.y_ticks == ((one.last_y, "2.5"),)
    flat = metric_chart(Curve("grad_norm", [(0, 1.0), (10, 1.0)], Latest(10, 1.0, at)))
    assert flat.label == "Gradient norm" and len(flat.y_ticks) == 1
    assert 0 < flat.last_y < flat.bottom  # inside the plot, not on an edge
