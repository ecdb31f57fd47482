"""The share controller and Fair Tree: bounded steps, recovery of a share, no wind-up."""

from __future__ import annotations

import itertools

import pytest

from commonlab.simulator.controller import ControllerSettings, next_weights
from commonlab.simulator.fairtree import fair_tree_factors
from commonlab.simulator.metrics import share_windows
from tests.simulator.helpers import fleet, run

ENTITLED = {"a": 0.5, "b": 0.5}


def test_an_underserved_pool_gains_weight_in_bounded_steps() -> None:
    weights = dict(ENTITLED)
    new = next_weights(
        entitled=ENTITLED,
        delivered={"a": 10.0, "b": 90.0},
        weights=weights,
        waiting={"a": True, "b": True},
    )
    assert new["a"] == pytest.approx(0.5 * 1.25)  # capped at +25%
    assert new["b"] == pytest.approx(0.5 * 0.75)  # capped at -25%


def test_a_share_recovers_under_the_controller() -> None:
    # A plant where pool a's jobs are hard to place: at equal weights it gets only 1/3.
    bias = {"a": 0.5, "b": 1.0}
    weights = dict(ENTITLED)
    shares = []
    for _ in range(30):
        pull = {p: weights[p] * bias[p] for p in weights}
        total = sum(pull.values())
        delivered = {p: 100 * pull[p] / total for p in pull}
        shares.append(delivered["a"] / 100)
        weights = next_weights(
            entitled=ENTITLED, delivered=delivered, weights=weights, waiting={"a": True, "b": True}
        )
    assert shares[0] == pytest.approx(1 / 3)
    assert abs(shares[-1] - 0.5) < 0.02
    steps = [abs(b / a - 1) for a, b in itertools.pairwise(shares)]
    assert max(steps) < 0.5


def test_a_pool_without_waiting_work_drifts_back_and_is_bounded() -> None:
    weights = {"a": 2.0, "b": 0.5}  # a far above its entitlement
    settings = ControllerSettings(ceiling=3.0)
    new = next_weights(
        entitled=ENTITLED,
        delivered={"a": 0.0, "b": 50.0},
        weights=weights,
        waiting={"a": False, "b": True},
        settings=settings,
    )
    assert new["a"] == pytest.approx(1.5)  # capped at 3 x 0.5, then moving down
    assert new["b"] == pytest.approx(0.5)  # alone and on target: unchanged


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_step"):
        ControllerSettings(max_step=1.5)


def test_fair_tree_ranks_the_pool_with_less_usage_per_share_first() -> None:
    factors = fair_tree_factors(
        pool_shares=[0.5, 0.5], tenant_pool=[0, 0, 1], tenant_usage=[10.0, 0.0, 5.0]
    )
    # Pool 1 has used less; inside pool 0 the unused tenant ranks first.
    assert factors == [pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]


def test_in_simulation_the_controller_restores_a_pool_that_fair_tree_holds_back() -> None:
    # Pool x alone uses the machine for 10 h; then x and y both submit a backlog. Fair Tree
    # (7-day half-life) serves y alone for hours to even out the history; the controller
    # sees x waiting with nothing delivered and raises x's weight until x is served again.
    four = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
    jobs = [{"submit": 0, "runtime": 3600, "size": 4, "tenant": "x"} for _ in range(10)]
    for i in range(200):
        jobs.append({"submit": 36_000 + i, "runtime": 600, "size": 1, "tenant": "x"})
        jobs.append({"submit": 36_000 + i, "runtime": 600, "size": 1, "tenant": "y"})
    x_share = {}
    for policy in ("multifactor", "commonlab"):
        workload, outcome, _ = run(
            four,
            jobs,
            policy,
            pools=("px", "py"),
            entitled=(0.5, 0.5),
            tenant_pools={"x": "px", "y": "py"},
        )
        windows = share_windows(workload, outcome, [0.5, 0.5], 3600)
        assert windows["waiting"][0][10:24].all()
        x_share[policy] = windows["share"][0]
    assert x_share["multifactor"][11:18].max() == 0  # held back for 7 hours and more
    # Recovered within 4 hours; Fair Tree's strict ranking makes it alternate window by
    # window, around the entitlement.
    assert x_share["commonlab"][13] > 0
    assert abs(x_share["commonlab"][14:24].mean() - 0.5) < 0.05
