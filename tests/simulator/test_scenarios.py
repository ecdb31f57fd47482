"""The scenario family: reproducible from a seed, the regime's load and gang bound, each
member state behaving as its regime says, and a workload the simulator builds unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator import scenarios
from commonlab.simulator.inputs import entitlements, load_regulation, partitions
from commonlab.simulator.scenarios import (
    BURSTY,
    DAY,
    IDLE_RETURN,
    OVER_ASKING,
    WEEK,
    Regime,
    generate,
)
from commonlab.simulator.workload import bind_classes, build_workload

EXAMPLE = Path(__file__).parents[2] / "examples" / "regulation-five-states.json"


def small(**changes: object) -> Regime:
    base = Regime("t", "a test regime", accelerators=128, load=1.2, weeks=2)
    return replace(base, **changes)


def columns(trace) -> dict[str, np.ndarray]:
    return {
        "submit": np.array(trace.submit),
        "runtime": np.array(trace.runtime),
        "accelerators": np.array(trace.accelerators),
        "tenant": np.array(trace.tenant),
    }


def state_of(trace) -> np.ndarray:
    return np.array([t.split("-")[0] for t in trace.tenant])


def test_a_seed_gives_the_same_jobs_and_another_seed_others():
    regime = small()
    first, again = generate(regime, seed=7), generate(regime, seed=7)
    other = generate(regime, seed=8)
    assert columns(first).keys() == columns(again).keys()
    for name, values in columns(first).items():
        assert np.array_equal(values, columns(again)[name]), name
    assert len(first) != len(other) or first.submit != other.submit


@pytest.mark.parametrize("load", [0.7, 1.0, 1.5])
def test_the_offered_load_is_the_regimes(load):
    regime = small(load=load)
    trace = generate(regime, seed=1)
    window = regime.weeks * WEEK
    jobs = columns(trace)
    inside = np.minimum(jobs["runtime"], window - jobs["submit"]) * jobs["accelerators"]
    offered = inside.sum() / (regime.accelerators * window)
    # Exact but for the last job kept, which may carry up to a gang times a week.
    assert load <= offered <= load + 0.05
    assert jobs["submit"].min() >= 0 and jobs["submit"].max() <= window
    assert np.all(np.diff(jobs["submit"]) >= 0)


def test_runtimes_are_heavy_tailed_from_minutes_to_the_regimes_longest():
    regime = small(median_runtime_h=2, runtime_sigma=2.0, longest_runtime_h=14 * 24, load=1.5)
    runtime = np.array(generate(regime, seed=3).runtime)
    assert runtime.min() >= 60 and runtime.max() <= 14 * DAY
    assert np.median(runtime) == pytest.approx(2 * 3600, rel=0.25)
    assert (runtime < 600).any() and (runtime > 4 * DAY).any()


def test_gangs_are_powers_of_two_up_to_an_eighth_of_the_fleet_or_the_regimes_bound():
    default = np.array(generate(small(), seed=2).accelerators)
    assert default.max() == 128 // 8
    assert set(np.unique(default)) <= {1, 2, 4, 8, 16}
    llm = scenarios.regime("llm-gangs")
    sizes = np.array(generate(llm, seed=2).accelerators)
    assert sizes.max() == 1024 and (sizes >= 256).sum() > 100


def test_each_state_behaves_as_its_regime_says():
    regime = small(weeks=4, over_asking="NL", bursty="ES", idle_return="FR", idle_weeks=2)
    assert scenarios.behaviours(regime) == {
        "DE": "steady",
        "FR": IDLE_RETURN,
        "IT": "steady",
        "ES": BURSTY,
        "NL": OVER_ASKING,
    }
    trace = generate(regime, seed=4)
    submit, state = np.array(trace.submit), state_of(trace)
    work = np.array(trace.accelerators) * np.array(trace.runtime)
    # Idle for the first two weeks, then back.
    assert submit[state == "FR"].min() >= 2 * WEEK
    assert (submit[state == "FR"] < 3 * WEEK).any()
    # Bursty: everything inside the first day of each week.
    assert np.all(submit[state == "ES"] % WEEK <= DAY)
    # Over-asking: NL (entitled 10%) asks for more than DE (entitled 30%) in proportion.
    share = {code: work[state == code].sum() / work.sum() for code in ("NL", "DE", "IT")}
    assert share["NL"] / 0.10 > 2 * share["DE"] / 0.30
    # Steady: IT's arrivals spread over all four weeks.
    weeks = np.bincount((submit[state == "IT"] // WEEK).astype(int), minlength=4)[:4]
    assert weeks.min() > 0.5 * weeks.mean()


def test_every_tenant_is_mapped_to_its_member_states_pool_and_the_workload_builds():
    regime = small()
    trace = generate(regime, seed=5)
    document = scenarios.five_states_regulation()
    shares = entitlements(document)
    assert shares.shares == {
        "national:DE": 0.30,
        "national:ES": 0.15,
        "national:FR": 0.25,
        "national:IT": 0.20,
        "national:NL": 0.10,
    }
    mapping = scenarios.tenant_pools(regime)
    assert set(trace.tenant) <= set(mapping)
    workload = build_workload([trace], pools=shares.pools, tenant_pools=mapping)
    workload, _ = bind_classes(workload, partitions(scenarios.fleet_for(regime)))
    assert len(workload) == len(trace)
    pool_names = np.array(workload.pools)[workload.pool]
    tenant_names = [workload.tenants[t].split("/")[-1] for t in workload.tenant]
    assert all(p == mapping[t] for p, t in zip(pool_names, tenant_names, strict=True))


def test_the_example_regulation_is_the_one_the_regimes_use():
    assert load_regulation(EXAMPLE) == scenarios.five_states_regulation()
    assert json.loads(EXAMPLE.read_text())["contribution_scale"]["shares"]["DE"] == 30


def test_named_regimes_and_their_quick_versions_are_valid():
    names = [r.name for r in scenarios.REGIMES]
    assert len(set(names)) == len(names)
    for regime in scenarios.REGIMES:
        quick = regime.quick()
        assert quick.accelerators < regime.accelerators and quick.accelerators % 8 == 0
        assert 1 <= quick.gang_limit <= quick.accelerators
        assert len(generate(quick, seed=0)) > 0
        fleet = scenarios.fleet_for(regime)
        assert fleet.accelerators == regime.accelerators


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"accelerators": 100}, "multiple of 8"),
        ({"load": 0}, "load must be"),
        ({"weeks": 0}, "weeks must be"),
        ({"largest_gang": 4096}, "largest_gang must be"),
        ({"largest_gang": 0}, "largest_gang must be"),
        ({"median_runtime_h": 0}, "median_runtime_h must be"),
        ({"runtime_sigma": float("nan")}, "runtime_sigma must be"),
        ({"longest_runtime_h": 0.001}, "longest_runtime_h must be"),
        ({"gang_decay": 0}, "gang_decay must be"),
        ({"tenants_per_state": 0}, "tenants_per_state must be"),
        ({"burst_hours": 24 * 8}, "burst_hours must be 1 to 168"),
        ({"bursty": "NL"}, "distinct member states"),
        ({"idle_return": "XX"}, "distinct member states"),
        ({"idle_return": "FR", "idle_weeks": 3}, "idle_weeks must be"),
    ],
)
def test_a_bad_regime_is_one_line_naming_the_field(changes, words):
    with pytest.raises(InvalidInput, match=words):
        generate(small(**changes))


def test_an_unknown_regime_name_lists_the_known_ones():
    with pytest.raises(InvalidInput, match=r"known: steady-0\.7"):
        scenarios.regime("nope")
