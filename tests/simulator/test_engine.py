"""Hand-checked scenarios for the event-driven core: gangs, backfill, classes, domains."""

from __future__ import annotations

import pytest

from commonlab.simulator.engine import EngineSettings
from tests.simulator.helpers import fleet, run

FOUR = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})


@pytest.mark.parametrize("policy", ["fifo", "multifactor", "drf", "commonlab"])
def test_a_gang_waits_for_all_its_accelerators(policy: str) -> None:
    jobs = [
        {"submit": 0, "runtime": 10, "size": 3},
        {"submit": 1, "runtime": 5, "size": 2},  # only 1 free until the first ends
    ]
    _, outcome, _ = run(FOUR, jobs, policy)
    assert outcome.start.tolist() == [0, 10]
    assert outcome.end.tolist() == [10, 15]


def test_backfill_never_delays_the_head_job() -> None:
    jobs = [
        {"submit": 0, "runtime": 100, "size": 3},
        {"submit": 1, "runtime": 10, "size": 4},  # head: reserved for t=100
        {"submit": 2, "runtime": 200, "size": 1},  # would hold an accelerator past t=100
        {"submit": 3, "runtime": 50, "size": 1},  # ends before t=100: may backfill
    ]
    _, outcome, _ = run(FOUR, jobs, "fifo")
    start = outcome.start.tolist()
    assert start[1] == 100
    assert start[3] == 30  # the first backfill pass (bf_interval 30 s)
    assert start[2] == 110
    assert outcome.backfilled == 1


def test_a_job_runs_only_on_its_accelerator_class() -> None:
    spec = fleet(
        {"name": "h", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 2},
        {"name": "a", "accelerator": "A100", "nodes": 1, "accelerators_per_node": 4},
    )
    jobs = [
        {"submit": 0, "runtime": 10, "size": 2, "classes": ["A100"]},
        {"submit": 0, "runtime": 10, "size": 2, "classes": ["A100"]},
        {"submit": 0, "runtime": 10, "size": 2, "classes": ["A100"]},  # H100 free, waits
        {"submit": 0, "runtime": 10, "size": 2},  # any class: takes the H100s
    ]
    _, outcome, names = run(spec, jobs)
    placed = [names[p] for p in outcome.partition.tolist()]
    assert placed == ["a", "a", "a", "h"]
    assert outcome.start.tolist() == [0, 0, 10, 0]


@pytest.mark.parametrize(("one_domain", "expected"), [(True, 100), (False, 1)])
def test_a_job_asking_for_one_domain_waits_for_one(one_domain: bool, expected: float) -> None:
    # Two domains of 3; two jobs leave one free accelerator in each.
    spec = fleet(
        {
            "name": "p",
            "accelerator": "H100",
            "nodes": 6,
            "accelerators_per_node": 1,
            "nodes_per_domain": 3,
        }
    )
    jobs = [
        {"submit": 0, "runtime": 100, "size": 2, "one_domain": True},
        {"submit": 0, "runtime": 200, "size": 2, "one_domain": True},
        {"submit": 1, "runtime": 10, "size": 2, "one_domain": one_domain},
    ]
    _, outcome, _ = run(spec, jobs)
    assert outcome.start.tolist()[2] == expected


def test_jobs_larger_than_any_partition_are_set_aside_and_counted() -> None:
    jobs = [{"submit": 0, "runtime": 10, "size": 5}, {"submit": 0, "runtime": 10, "size": 1}]
    workload, _, _ = run(FOUR, jobs)
    assert len(workload) == 1
    assert workload.set_aside == {"larger than any partition of its classes": 1}


def test_fair_share_serves_the_pool_that_has_had_less() -> None:
    # Pool x has used the machine; when both wait, pool y's job goes first.
    jobs = [
        {"submit": 0, "runtime": 600, "size": 4, "tenant": "x"},
        {"submit": 1, "runtime": 10, "size": 4, "tenant": "x"},
        {"submit": 2, "runtime": 10, "size": 4, "tenant": "y"},
    ]
    pools = ("px", "py")
    _, outcome, _ = run(
        FOUR,
        jobs,
        "multifactor",
        pools=pools,
        entitled=(0.5, 0.5),
        tenant_pools={"x": "px", "y": "py"},
    )
    assert outcome.start.tolist() == [0, 610, 600]
    _, outcome, _ = run(
        FOUR, jobs, "fifo", pools=pools, entitled=(0.5, 0.5), tenant_pools={"x": "px", "y": "py"}
    )
    assert outcome.start.tolist() == [0, 600, 610]


def test_backfill_reads_many_queues_lazily_with_the_same_schedule() -> None:
    # 120 tenants (queues) under multifactor: the lazy read of queue heads and the full scan
    # must start every job at the same time.
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 4, "accelerators_per_node": 8})
    jobs = [
        {
            "submit": i * 7,
            "runtime": 300 + (i * 37) % 900,
            "size": 1 + (i * 5) % 8,
            "tenant": f"t{i % 120}",
        }
        for i in range(1500)
    ]
    outcomes = [
        run(spec, jobs, "multifactor", settings=EngineSettings(scan_queues=limit))[1]
        for limit in (0, 10**9)
    ]
    assert outcomes[0].backfilled > 0
    assert outcomes[0].start.tolist() == outcomes[1].start.tolist()
