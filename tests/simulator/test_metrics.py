"""Metrics on a three-job example computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from commonlab.simulator.metrics import check_targets, fidelity, jain, measure, pool_demand
from tests.simulator.helpers import fleet, run

TWO = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 2})


def test_three_jobs_by_hand() -> None:
    jobs = [
        {"submit": 0, "runtime": 10, "size": 1, "wait": 0},
        {"submit": 0, "runtime": 5, "size": 2, "wait": 10},  # waits for the first: 10-15
        {"submit": 1, "runtime": 4, "size": 1, "wait": 20},  # behind it: 15-19
    ]
    workload, outcome, _ = run(TWO, jobs)
    assert outcome.start.tolist() == [0, 10, 15]
    figures = measure(workload, outcome, capacity=2, entitled=[1.0])
    assert figures["mean_wait_h"] * 3600 == pytest.approx((0 + 10 + 14) / 3)
    assert figures["mean_jct_h"] * 3600 == pytest.approx((10 + 15 + 18) / 3)
    assert figures["makespan_days"] * 86400 == pytest.approx(19)
    # While jobs arrive (t=0-1): one of two accelerators busy.
    assert figures["utilisation"] == pytest.approx(0.5)
    # Up to the last start (t=15): 10 + 2*5 busy accelerator-seconds of 30.
    assert figures["utilisation_to_last_start"] == pytest.approx(20 / 30)
    assert figures["utilisation_makespan"] == pytest.approx(24 / 38)
    # One accelerator idle from t=0 to t=10 while the 2-accelerator job waits.
    assert figures["idle_while_waiting_accelerator_hours"] * 3600 == pytest.approx(10)
    assert figures["preemptions"] == 0
    fid = fidelity(workload, outcome)
    assert fid["recorded_median_s"] == 10 and fid["simulated_median_s"] == 10
    assert fid["spearman"] == pytest.approx(1.0)


def test_jain_index() -> None:
    assert jain([1, 1, 1]) == pytest.approx(1.0)
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)


def test_shares_per_window_against_entitlement() -> None:
    # Two pools entitled 50/50 on 2 accelerators; pool x takes both for the first hour while y
    # waits, then y takes both.
    jobs = [
        {"submit": 0, "runtime": 3600, "size": 2, "tenant": "x"},
        {"submit": 1, "runtime": 3600, "size": 2, "tenant": "y"},
    ]
    workload, outcome, _ = run(
        TWO, jobs, pools=("px", "py"), entitled=(0.5, 0.5), tenant_pools={"x": "px", "y": "py"}
    )
    figures = measure(workload, outcome, capacity=2, entitled=[0.5, 0.5])
    hourly = figures["share_hour"]
    # The only window (up to the last start, t=3600): y waited all of it and got nothing.
    assert hourly["pools"]["py"]["max_shortfall"] == pytest.approx(0.5, abs=1e-3)
    assert hourly["max_shortfall"] == pytest.approx(0.5, abs=1e-3)
    assert np.isclose(sum(s[0] for s in figures["hourly_share"]["pools"].values()), 1.0)


def _figures(deviation: float, *, waited: int = 1, utilisation=0.9, jct=1.0, wait=0.5) -> dict:
    return {
        "share_week": {
            "max_abs_deviation": deviation,
            "pools": {"a": {"windows_waiting": waited}, "b": {"windows_waiting": 0}},
        },
        "utilisation": utilisation,
        "mean_jct_h": jct,
        "p99_jct_h": 4 * jct,
        "mean_wait_h": wait,
    }


def _verdicts(policies: dict) -> dict[str, str]:
    return {c["target"]: c["verdict"] for c in check_targets(policies, tolerance=0.02)}


SHARE = "weekly share within ±2 points where any policy holds it"
NO_WORSE = "weekly deviation no worse than the best of fifo/multifactor/drf"
UTILISATION = "utilisation within 0.5 points of the best"
JCT = "mean JCT within 5% of multifactor's"


@pytest.mark.parametrize(
    ("ours", "verdicts"),
    [
        (
            _figures(0.015, utilisation=0.896, jct=1.04),
            {SHARE: "met", NO_WORSE: "met", UTILISATION: "met", JCT: "met"},
        ),
        (
            _figures(0.05, utilisation=0.89, jct=1.06),
            {SHARE: "NOT met", NO_WORSE: "NOT met", UTILISATION: "NOT met", JCT: "NOT met"},
        ),
        # No pool waited an hour in any week: the share targets show nothing.
        (
            _figures(0.0, waited=0),
            {SHARE: "not tested", NO_WORSE: "not tested", UTILISATION: "met", JCT: "met"},
        ),
    ],
)
def test_targets_are_met_not_met_or_not_tested(ours: dict, verdicts: dict) -> None:
    # multifactor holds ±2 points, so the share target is tested.
    others = {"fifo": _figures(0.04), "multifactor": _figures(0.015)}
    assert _verdicts({**others, "commonlab": ours}) == verdicts


def test_no_job_waiting_under_any_policy_tests_nothing() -> None:
    idle = {n: _figures(0.0, waited=0, wait=0.0) for n in ("fifo", "multifactor", "commonlab")}
    assert set(_verdicts(idle).values()) == {"not tested"}
    assert check_targets({"fifo": idle["fifo"]}, tolerance=0.02) == []


def test_demand_per_pool_beside_its_entitlement() -> None:
    jobs = [
        {"submit": 0, "runtime": 3600, "size": 2, "tenant": "x"},
        {"submit": 0, "runtime": 3600, "size": 2, "tenant": "x"},
        {"submit": 1, "runtime": 3600, "size": 1, "tenant": "y"},
    ]
    workload, _, _ = run(
        TWO, jobs, pools=("px", "py"), entitled=(0.7, 0.3), tenant_pools={"x": "px", "y": "py"}
    )
    assert pool_demand(workload, [0.7, 0.3]) == {
        "px": {"jobs": 2, "accelerator_hours": 4.0, "demand_share": 0.8, "entitled": 0.7},
        "py": {"jobs": 1, "accelerator_hours": 1.0, "demand_share": 0.2, "entitled": 0.3},
    }
