"""Journey 5, the council tries a rule before voting on it: on the demo facility a delegate
tables a regulation moving 5% of capacity from the national pools to the SME pool, runs the
proposal and the regulation in force with `commonlab simulate --motion`, and the motion's
page shows both side by side (queueing delay per pool, share error, utilisation) before the
delegates vote with it in front of them.

By default the what-if replays the facility's own last quarter (its jobs as they ran, on its
fleet as it is) and says so. The demo facility is young: a handful of jobs cannot tell two
rules apart, so the delegate also runs a published-style trace (made here) and the page
shows the latest, naming which workload each replayed."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.test_journey_1_a_country_joins import DELEGATES, as_person
from tests.simulator.test_motion_cli import (
    _Api,
    _run_jobs,
    _workload,  # 300 jobs of ten teams, 16 H100
)


def test_journey_5_the_council_tries_a_rule_before_voting(demo, capsys, monkeypatch, tmp_path):
    api = http_client(base_url=demo.url, timeout=30)
    in_force = api.get("/api/v1/regulations/in-force").json()
    regulation = in_force["document"]
    capacity = regulation["capacity"]
    # 5% of capacity moves from the national pools to the pool for SMEs and public bodies.
    capacity["national_pools"] = str(Decimal(capacity["national_pools"]) - 5)
    capacity["smes_and_public_bodies"] = str(Decimal(capacity["smes_and_public_bodies"]) + 5)
    regulation["title"] = "Five points of capacity for SMEs and public bodies"
    payload = tmp_path / "proposal.json"
    payload.write_text(json.dumps({"regulation": regulation}))

    as_person(monkeypatch, demo, demo.token_of(DELEGATES["SE"]))
    code, out, err = run(
        capsys, "motion", "table", "adopt_regulation", "--title", regulation["title"],
        "--payload", f"@{payload}",
    )  # fmt: skip
    assert code == 0, err
    motion_id = int(re.search(r"Motion (\d+) tabled", out).group(1))

    # The facility ran work this quarter: a project's jobs, run to the end on the local machine.
    ran = _run_jobs(_Api(demo.url), {"Authorization": f"Bearer {demo.served.token}"}, 4)

    # Before anyone votes, the delegate runs both regulations on the facility's last quarter:
    # no fleet, no trace named; its own jobs as they ran, each in its project's pool.
    code, out, err = run(capsys, "simulate", "--motion", str(motion_id))
    assert code == 0, err
    printed = " ".join(out.split())  # whatever the console's width
    assert "replays the facility's own jobs submitted" in printed
    assert f"{len(ran)} jobs that ran, each in the pool its project draws on" in printed
    assert f"Attached simulation 1 to motion {motion_id}" in printed
    page = httpx.get(f"{demo.url}/motions/{motion_id}").text
    assert re.search(r"Workload: replays the facility(&#39;|')s own jobs of", page)

    # Four short jobs are too light to compare rules; the delegate adds a trace's workload.
    fleet, trace = _workload(tmp_path)
    code, out, err = run(
        capsys, "simulate", "--motion", str(motion_id), "--workload", "trace",
        "--fleet", str(fleet), "--trace", str(trace), "--load", "1.1",
    )  # fmt: skip
    assert code == 0, err
    assert f"Attached simulation 2 to motion {motion_id}" in out

    # The motion's page shows the comparison: per pool, under each regulation.
    page = httpx.get(f"{demo.url}/motions/{motion_id}").text
    assert "What the simulator says" in page and "No simulation is attached yet" not in page
    assert "Mean queueing delay per pool" in page  # the chart
    for column in ("Share error", "Fleet used", "Mean wait"):
        assert column in page
    pools = page[page.index('class="whatif-pools"') :]
    assert "smes_and_public_bodies" in pools and "In force" in pools and "Proposed" in pools
    own, attached = api.get(f"/api/v1/motions/{motion_id}/simulations").json()["items"]
    assert own["document"]["workload"]["source"]["kind"] == "facility"
    assert attached["document"]["workload"]["source"]["kind"] == "trace"
    figures = attached["document"]["proposed"]["figures"]["pools"]
    before = attached["document"]["in_force"]["figures"]["pools"]
    assert (
        figures["smes_and_public_bodies"]["entitled"] > before["smes_and_public_bodies"]["entitled"]
    )

    # The delegates vote with that in front of them; the motion is decided by their votes.
    for code_ in ("SE", "IT", "FR", "DE", "ES"):
        as_person(monkeypatch, demo, demo.token_of(DELEGATES[code_]))
        code, out, err = run(capsys, "vote", str(motion_id), "yes")
        assert code == 0, err
    decided = api.get(f"/api/v1/motions/{motion_id}").json()
    assert decided["status"] == "passed"
    adopted = api.get("/api/v1/regulations/in-force").json()
    assert adopted["document"]["title"] == regulation["title"]
    assert adopted["version"] == in_force["version"] + 1
