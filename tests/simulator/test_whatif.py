"""The what-if's client side: one workload under two regulations, reduced to the summary a
motion carries, which the API's schema accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import RegulationDocument
from commonlab.simulator.schemas import WhatIfCreate
from commonlab.simulator.whatif import OwnJobs, compare, own_jobs, pick_workload, replay, summarise
from tests.simulator.helpers import fleet, trace

ROOT = Path(__file__).resolve().parents[2]


def _documents(**capacity: int) -> tuple[RegulationDocument, RegulationDocument]:
    data = json.loads((ROOT / "examples" / "regulation.json").read_text())
    in_force = RegulationDocument.model_validate(data)
    data["regulation"]["capacity"].update(capacity)
    return in_force, RegulationDocument.model_validate(data)


def _run(in_force: RegulationDocument, proposed: RegulationDocument) -> dict:
    jobs = [
        {"submit": i * 10, "runtime": 300 + i % 7 * 60, "size": 1 + i % 4, "tenant": f"t{i % 12}"}
        for i in range(200)
    ]
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 2, "accelerators_per_node": 4})
    comparison, pools = compare(spec, in_force, proposed, [trace(jobs)], policy="multifactor")
    return summarise(
        comparison,
        pools=pools,
        traces=["t.csv"],
        in_force={"title": "now", "sha256": "a" * 64, "version": 3},
        proposed={"title": "next", "sha256": "b" * 64},
        scale={"DE": "24"},
    )


def test_the_summary_compares_each_pool_under_both_regulations() -> None:
    body = _run(*_documents(open_calls=20, national_pools=60))
    WhatIfCreate.model_validate(body)  # what the facility will accept
    before, after = body["in_force"]["figures"], body["proposed"]["figures"]
    assert set(before["pools"]) == set(after["pools"])
    assert before["pools"]["open_calls"]["entitled"] == pytest.approx(0.3)
    assert after["pools"]["open_calls"]["entitled"] == pytest.approx(0.2)
    assert sum(p["jobs"] for p in before["pools"].values()) == 200
    assert sum(p["delivered"] for p in after["pools"].values()) == pytest.approx(1.0)
    assert body["workload"]["jobs"] == 200 and body["policy"] == "multifactor"


def test_a_pool_the_proposal_closes_is_left_out_and_said_so() -> None:
    body = _run(*_documents(directors_reserve=0, open_calls=35))
    WhatIfCreate.model_validate(body)
    assert "directors_reserve" not in body["in_force"]["figures"]["pools"]
    assert any("directors_reserve" in line for line in body["workload"]["how"])


# The facility's own jobs -------------------------------------------------------------------


def _export(
    rows: list[dict], *, jobs: int | None = None, left_out: dict | None = None
) -> list[str]:
    """What GET /api/v1/reports/workload?format=ndjson answers, line by line, for `rows`
    (submit, runtime, accelerators, tenant, pool; runtime None for a job that has not run)."""
    window = {"from": "2026-09-06T00:00:00+00:00", "to": "2026-12-07T00:00:00+00:00"}
    totals = {
        "jobs": len(rows) if jobs is None else jobs,
        "replayable": sum(r["runtime"] is not None for r in rows),
        "left_out": left_out or {},
    }
    jobs_ = [
        {"job_id": i, "class": "H100", "wait": 0.0, "state": "succeeded", **row}
        for i, row in enumerate(rows, start=1)
    ]
    entries = [{"window": window}, *({"job": job} for job in jobs_), {"totals": totals}]
    return [json.dumps(entry) for entry in entries]


def _own_rows() -> list[dict]:
    """A facility's quarter: Germany's national project busy, an open call's project light,
    and one job of a pool neither regulation below shares (a non-member's national pool)."""
    rows = [
        {"submit": i * 60.0, "runtime": 1800.0, "accelerators": 4, "tenant": "t1"}
        | {"pool": "national:DE"}
        for i in range(30)
    ]
    rows += [
        {"submit": 100.0 + i * 600, "runtime": 600.0, "accelerators": 1, "tenant": "t2"}
        | {"pool": "open_calls"}
        for i in range(5)
    ]
    rows.append(
        {
            "submit": 50.0,
            "runtime": 60.0,
            "accelerators": 1,
            "tenant": "t3",
            "pool": "national_pools",
        }
    )
    return rows


def _replayed(export: list[str], **capacity: int) -> dict:
    in_force, proposed = _documents(**capacity)
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 2, "accelerators_per_node": 4})
    own = own_jobs(export)
    comparison, pools = replay(spec, in_force, proposed, own, policy="multifactor")
    return summarise(
        comparison,
        pools=pools,
        traces=[f"the facility's own jobs, {own.window}"],
        in_force={"title": "now", "sha256": "a" * 64, "version": 3},
        proposed={"title": "next", "sha256": "b" * 64},
        scale={"DE": "24"},
        source={
            "kind": "facility",
            "from": own.start.isoformat(),
            "to": own.end.isoformat(),
            "jobs": 36,
        },
    )


def test_the_facilitys_jobs_replay_as_they_were_each_in_its_own_pool() -> None:
    export = _export(_own_rows(), jobs=38, left_out={"ended without running": 2})
    body = _replayed(export, open_calls=20, national_pools=60)
    document = WhatIfCreate.model_validate(body)
    pools = body["in_force"]["figures"]["pools"]
    # Each job kept its pool: nothing dealt, nothing stacked.
    assert pools["national:DE"]["jobs"] == 30 and pools["open_calls"]["jobs"] == 5
    assert sum(p["jobs"] for p in pools.values()) == body["workload"]["jobs"] == 35
    assert body["proposed"]["figures"]["pools"]["national:DE"]["jobs"] == 30
    how = body["workload"]["how"]
    assert how[0].startswith("replays the facility's own jobs submitted 2026-09-06–2026-12-06")
    assert "submit times as recorded (no arrival-rate scaling)" in how
    assert not any("stacked" in line or "round-robin" in line for line in how)
    assert any(line.startswith("tenants mapped to pools by the facility") for line in how)
    assert not any("operator" in line for line in how)
    aside = body["workload"]["set_aside"]
    assert aside["draws on pool national_pools, which both regulations do not share"] == 1
    assert aside["ended without running"] == 2
    assert document.workload.source is not None and document.workload.source.kind == "facility"
    # Thirty 4-accelerator jobs a minute apart on 8 accelerators: Germany's queue waits.
    assert pools["national:DE"]["mean_wait_h"] > 0
    assert document.no_difference() is None


def test_a_runtime_is_replayed_whole_and_the_submit_times_as_recorded() -> None:
    rows = [
        {"submit": 0.0, "runtime": 40 * 3600.0, "accelerators": 8, "tenant": "t1"}
        | {"pool": "national:DE"},
        {"submit": 3600.0, "runtime": 60.0, "accelerators": 8, "tenant": "t2"}
        | {"pool": "open_calls"},
    ]
    body = _replayed(_export(rows))
    figures = body["in_force"]["figures"]
    # No 24 h cut: the second job waits for the whole 40 h job, less the hour between them.
    assert figures["pools"]["open_calls"]["mean_wait_h"] == pytest.approx(39, abs=0.02)
    assert body["workload"]["submission_hours"] == pytest.approx(1.0)


def test_a_light_workload_says_it_cannot_show_a_difference() -> None:
    rows = [
        {"submit": i * 3600.0, "runtime": 60.0, "accelerators": 1, "tenant": "t1"}
        | {"pool": "open_calls"}
        for i in range(3)
    ]
    document = WhatIfCreate.model_validate(
        _replayed(_export(rows), open_calls=20, national_pools=60)
    )
    reason = document.no_difference()
    assert reason is not None and reason.startswith("no job waited under either regulation")


def test_equal_figures_say_there_is_no_difference() -> None:
    body = _run(*_documents(open_calls=20, national_pools=60))
    body["proposed"]["figures"] = {
        **body["in_force"]["figures"],
        "pools": {
            name: {**pool, "entitled": body["proposed"]["figures"]["pools"][name]["entitled"]}
            for name, pool in body["in_force"]["figures"]["pools"].items()
        },
    }
    document = WhatIfCreate.model_validate(body)
    # The workload waits, so it is the equal figures, not an idle fleet, that say it.
    assert document.in_force.figures.mean_wait_h > 0
    assert document.no_difference() == (
        "every figure is the same under both regulations: the workload shows no difference"
    )


def test_no_job_of_a_shared_pool_is_an_error_naming_what_to_pass() -> None:
    rows = [{"submit": 0.0, "runtime": 60.0, "accelerators": 1, "tenant": "t1", "pool": "nowhere"}]
    with pytest.raises(InvalidInput, match="pass --workload trace --trace FILE"):
        _replayed(_export(rows))


def test_an_export_this_client_cannot_read_is_one_line() -> None:
    whole = _export(_own_rows())
    for unreadable in (
        ['{"from": "2026-09-06", "rows": []}'],  # the whole-JSON form, not JSON lines
        [whole[0], "not json", *whole[1:]],
        [*whole, whole[1]],  # a job after the totals
        [whole[0], '{"job": {"submit": 0}}', *whole[1:]],  # a job without its fields
    ):
        with pytest.raises(InvalidInput, match="not one this client reads"):
            own_jobs(unreadable)
    broken = [json.loads(line) for line in whole]
    broken[1]["job"]["pool"] = "open_calls"  # t1 now draws on two pools
    with pytest.raises(InvalidInput, match="tenant t1 two pools"):
        own_jobs([json.dumps(entry) for entry in broken])


def test_an_export_cut_short_is_refused_not_replayed_in_part() -> None:
    whole = _export(_own_rows())
    for cut in ([], whole[:1], whole[:-1]):
        with pytest.raises(InvalidInput, match="cut short"):
            own_jobs(cut)
    assert len(own_jobs(whole).trace) == len(_own_rows())


def _own(ran: int, submitted: int) -> OwnJobs:
    rows = [
        {"submit": 0.0, "runtime": 60.0, "accelerators": 1, "tenant": "t1", "pool": "open_calls"}
    ] * ran
    return own_jobs(_export(rows, jobs=submitted))


@pytest.mark.parametrize(
    ("choice", "ran", "traces", "expected", "said"),
    [
        ("auto", 3, [], "facility", None),
        ("auto", 3, ["t.csv"], "facility", None),
        ("facility", 1, [], "facility", None),
        ("auto", 0, ["t.csv"], "trace", "replaying the published trace(s) t.csv instead"),
        ("trace", 3, ["t.csv"], "trace", None),
        ("auto", 0, [], InvalidInput, "pass --trace FILE"),
        ("facility", 0, ["t.csv"], InvalidInput, "nothing of its own to replay"),
        ("trace", 3, [], InvalidInput, "--workload trace needs a published trace"),
    ],
)
def test_which_workload_a_whatif_replays(choice, ran, traces, expected, said) -> None:
    own = _own(ran, submitted=ran + 2)
    if expected is InvalidInput:
        with pytest.raises(InvalidInput, match=said) as refused:
            pick_workload(choice, own, traces)
        assert "\n" not in str(refused.value)
        return
    kind, note = pick_workload(choice, own, traces)
    assert kind == expected
    assert note is None if said is None else said in note
    if note:
        assert f"hold {ran} that ran (of {ran + 2} submitted)" in note
