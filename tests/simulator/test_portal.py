"""The motion's page on the portal shows the latest simulation attached to it (SQLite and
PostgreSQL), and says how to attach one while none is."""

from __future__ import annotations

import html
import re

from tests.simulator.whatifs import PROPOSED, changed, found_council, table, whatif_body


def _text(page: str) -> str:
    page = re.sub(r"</?(?:a|strong|em|code|span|time)\b[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_motion_page_shows_the_latest_simulation(client, operator):
    seats = found_council(client, operator)
    motion = table(client, seats["IT"], "adopt_regulation", {"regulation": PROPOSED})

    empty = _text(client.get(f"/motions/{motion}").text)
    assert "What the simulator says" in empty
    assert "No simulation is attached yet" in empty
    assert f"commonlab simulate --motion {motion}" in empty

    older = changed(whatif_body(), "policy", "fifo")
    for body in (older, whatif_body()):
        response = client.post(
            f"/api/v1/motions/{motion}/simulations", json=body, headers=seats["FR"]
        )
        assert response.status_code == 201, response.text
    page = client.get(f"/motions/{motion}")
    assert page.status_code == 200
    text = _text(page.text)
    assert "No simulation is attached yet" not in text
    assert "scheduled by the commonlab policy" in text  # the latest one
    assert "Attached by Delegate of France" in text
    assert "Utilisation 80.0% 80.0%" in text
    # open_calls: entitled 30% → 40%, mean wait 75 min → 30 min, p99 three times that.
    assert "Open calls open_calls In force 30.0%" in text
    assert "Proposed 40.0% 25.0% 4.0% 20.0% 30.0 min 90.0 min" in text
    assert "IT national:IT" in text
    assert "<svg" in page.text and "Mean queueing delay per pool" in page.text
    assert page.text.count('fill="#3a6fd0"') == 3  # a proposed bar per pool, and the legend
    assert whatif_body()["workload"]["how"][0] in text
    # Attached before a what-if said which workload it replayed: it still renders, and says so.
    assert "Workload: workload not stated." in text
    assert "No difference to show" not in text


FACILITY = {"kind": "facility", "from": "2026-09-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def test_the_page_says_which_workload_was_replayed(client, operator):
    seats = found_council(client, operator)
    motion = table(client, seats["IT"], "adopt_regulation", {"regulation": PROPOSED})
    sources = [
        (
            {**FACILITY, "jobs": 412},
            "replays the facility's own jobs of 2026-09-01–2026-11-30, 412 jobs",
        ),
        ({"kind": "trace", "jobs": 6203}, "a published trace: jobs.csv (6,203 jobs)"),
    ]
    for source, said in sources:
        body = changed(whatif_body(), "workload.source", source)
        response = client.post(
            f"/api/v1/motions/{motion}/simulations", json=body, headers=seats["FR"]
        )
        assert response.status_code == 201, response.text
        text = _text(client.get(f"/motions/{motion}").text)
        assert f"Workload: {said}." in text
        assert "Replayed: jobs.csv; contribution scale" in text
        assert "Utilisation 80.0% 80.0%" in text


def test_a_workload_too_light_to_show_a_difference_says_so_instead_of_columns(client, operator):
    seats = found_council(client, operator)
    motion = table(client, seats["IT"], "adopt_regulation", {"regulation": PROPOSED})
    body = whatif_body()
    for side in ("in_force", "proposed"):
        figures = body[side]["figures"]
        figures["mean_wait_h"] = figures["p99_wait_h"] = 0.0
        for pool in figures["pools"].values():
            pool["mean_wait_h"] = pool["p99_wait_h"] = 0.0
    response = client.post(f"/api/v1/motions/{motion}/simulations", json=body, headers=seats["FR"])
    assert response.status_code == 201, response.text
    page = client.get(f"/motions/{motion}").text
    text = _text(page)
    assert "No difference to show: no job waited under either regulation" in text
    assert "whatif-summary" not in page and "Mean queueing delay per pool" not in page
    assert body["workload"]["how"][0] in text  # how it was built still shows


def test_other_motion_kinds_have_no_simulation_section(client, operator):
    seats = found_council(client, operator)
    motion = table(
        client,
        seats["IT"],
        "admit_member",
        {"code": "EE", "name": "Estonia"},
    )
    assert "What the simulator says" not in client.get(f"/motions/{motion}").text
