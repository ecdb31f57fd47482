"""What a workload's construction announces: the runtime cut, demand dealt by file order,
pools without work and an overload, each with its numbers."""

from __future__ import annotations

import pytest

from commonlab.simulator.workload import build_workload
from tests.simulator.helpers import trace

HOUR = 3600


def test_the_runtime_cut_says_how_much_work_it_removed() -> None:
    jobs = [
        {"submit": 0, "runtime": 30 * HOUR, "size": 2, "tenant": "a"},  # 6 h x 2 removed
        {"submit": 10, "runtime": 25 * HOUR, "size": 4, "tenant": "a"},  # 1 h x 4 removed
        {"submit": 20, "runtime": 10 * HOUR, "size": 4, "tenant": "a"},
    ]
    workload = build_workload(
        [trace(jobs)], pools=["p"], max_runtime=24 * HOUR, tenant_pools={"a": "p"}
    )
    asked = 30 * 2 + 25 * 4 + 10 * 4
    (warning,) = workload.warnings
    assert warning == (
        "the 24 h runtime cut shortened 2 jobs (66.7% of the jobs) and removed 16 "
        f"accelerator-hours ({16 / asked:.1%} of the work asked): --max-runtime-h 0 keeps "
        "every job whole"
    )
    assert workload.runtime.max() == 24 * HOUR
    # No job longer than the cut: nothing to announce.
    uncut = build_workload([trace(jobs[2:])], pools=["p"], max_runtime=24 * HOUR)
    assert not any("runtime cut" in w for w in uncut.warnings)


def test_dealing_by_file_order_is_announced_with_the_demand_it_made() -> None:
    jobs = [
        {"submit": i, "runtime": 600, "size": 1 + i % 2, "tenant": f"t{i % 3}"} for i in range(6)
    ]
    workload = build_workload([trace(jobs)], pools=["a", "b", "c", "d"])
    dealt, idle = workload.warnings
    # t0 asks 1+2 (jobs 0, 3), t1 2+1, t2 1+2: a third each; d gets nothing.
    assert dealt.startswith("no --map, --map-file or --trace-pool: pools dealt round-robin")
    assert dealt.endswith("pools ask for 0.0% to 33.3% of the work each")
    assert idle.startswith("pool(s) d get no work from this workload")


def test_stacked_copies_dealt_to_pools_are_announced_as_equal_demand() -> None:
    jobs = [{"submit": i * 60, "runtime": 600, "size": 1} for i in range(10)]
    workload = build_workload([trace(jobs)], pools=["a", "b"], jobs=40)
    assert "stacked copies give every pool about the same demand" in workload.warnings[0]
    assert workload.warnings[0].endswith("pools ask for 50.0% to 50.0% of the work each")


def test_an_overload_says_how_fast_the_backlog_grows() -> None:
    # 100 jobs of 1 accelerator-hour each, one a minute, on 10 accelerators: over the
    # window the fleet can do 10 accelerator-minutes a minute, the jobs ask 60.
    jobs = [{"submit": i * 60, "runtime": HOUR, "size": 1, "tenant": "a"} for i in range(100)]
    workload = build_workload([trace(jobs)], pools=["p"], accelerators=10, load=1.5)
    assert workload.offered_load == pytest.approx(1.5, abs=0.01)
    (warning,) = [w for w in workload.warnings if "offered load" in w]
    window = workload.submit[-1]
    assert warning == (
        f"offered load 1.50 is above 1 over {window / HOUR:.1f} h of submissions: queues grow "
        "without bound, the backlog by about 120 accelerator-hours a day (12.0 h of the whole "
        f"fleet), {0.5 * window / HOUR:,.0f} h of the whole fleet by the last submission"
    )
    calm = build_workload([trace(jobs)], pools=["p"], accelerators=10, load=0.8)
    assert not any("offered load" in w for w in calm.warnings)
    # As recorded (no --load), the offered load is still measured and announced.
    recorded = build_workload([trace(jobs)], pools=["p"], accelerators=10)
    assert recorded.offered_load > 1 and any("offered load" in w for w in recorded.warnings)
