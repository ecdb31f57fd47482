"""Metrics on a three-job example computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from commonlab.simulator.metrics import fidelity, jain, measure
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
