"""Multifactor's job-size factor (Slurm's PriorityWeightJobSize with PriorityFavorSmall=YES):
queues per (tenant, job size), a smaller job ahead of a bigger one, fair share per tenant."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator.engine import State
from commonlab.simulator.inputs import partitions
from commonlab.simulator.policies import (
    JOB_SIZE_WEIGHT,
    RECLAIM,
    SIZE_WEIGHT_FLEET,
    CommonlabPolicy,
    Multifactor,
    MultifactorJobSize,
    make_policy,
)
from commonlab.simulator.workload import bind_classes, build_workload
from tests.simulator.helpers import fleet, run, trace

FOUR = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})

# One tenant: a 4-accelerator job holds the machine until t=100; behind it a big job (t=1)
# and a small one (t=2) too long to backfill before t=100.
BIG_THEN_SMALL = [
    {"submit": 0, "runtime": 100, "size": 4},
    {"submit": 1, "runtime": 50, "size": 4},
    {"submit": 2, "runtime": 200, "size": 1},
]


def test_without_a_size_factor_a_tenant_is_one_queue_in_submit_order() -> None:
    _, outcome, _ = run(FOUR, BIG_THEN_SMALL, "multifactor")
    assert outcome.start.tolist() == [0, 100, 150]
    policy = Multifactor()
    run(FOUR, BIG_THEN_SMALL, policy)
    assert policy.key_tenant == [0]


@pytest.mark.parametrize(
    "policy",
    [
        lambda: Multifactor(job_size_weight=1_000),
        lambda: CommonlabPolicy(job_size_weight=1_000),
        lambda: make_policy("multifactor-size"),
        lambda: make_policy("commonlab"),
    ],
)
def test_with_a_size_factor_the_small_job_queued_later_starts_first(policy) -> None:
    _, outcome, _ = run(FOUR, BIG_THEN_SMALL, policy())
    # At t=100 both wait: the small one starts, the big one waits for all four.
    assert outcome.start.tolist() == [0, 300, 100]


def test_the_size_term_is_slurms_favor_small_factor() -> None:
    policy = Multifactor(job_size_weight=1_000)
    run(FOUR, BIG_THEN_SMALL, policy)
    # Keys per (tenant, size): (a, 1) and (a, 4); factor 1 - size / capacity (4).
    assert policy.key_tenant == [0, 0]
    assert policy.key_size == [1, 4]
    small = policy.priority(0, 2)
    big = policy.priority(1, 1)
    age = policy.w_age * (2 - 1) / policy.max_age  # the big job is older by a second
    # The weight scales with the fleet (4 of SIZE_WEIGHT_FLEET accelerators).
    weight = 1_000 * 4 / SIZE_WEIGHT_FLEET
    assert small - big == pytest.approx(weight * (1 - 1 / 4) - age)
    assert JOB_SIZE_WEIGHT > 0 and CommonlabPolicy().w_jobsize == JOB_SIZE_WEIGHT
    assert make_policy("multifactor").w_jobsize == 0  # the baseline is unchanged


def test_the_size_weight_costs_the_same_age_per_accelerator_on_any_fleet() -> None:
    # Issue 19: unscaled, on 2,416 GPUs a job of 1,024 ranked ~294 days of age below a job
    # of one. Scaled, a job ranks about one point (10 minutes of age) per accelerator below
    # a smaller one, on 2,416 accelerators as on the 100,384 the weight was tuned on.
    days = {}
    for nodes in (302, 12_548):  # 2,416 and 100,384 accelerators
        spec = fleet(
            {"name": "p", "accelerator": "H100", "nodes": nodes, "accelerators_per_node": 8}
        )
        jobs = [
            {"submit": 0, "runtime": 10, "size": 1024, "tenant": "a"},
            {"submit": 0, "runtime": 10, "size": 1, "tenant": "a"},
        ]
        policy = MultifactorJobSize()
        run(spec, jobs, policy)
        big, small = policy.key_size.index(1024), policy.key_size.index(1)
        points = policy.priority(small, 1) - policy.priority(big, 0)
        days[nodes * 8] = points / policy.w_age * policy.max_age / 86_400
    assert days[2_416] == pytest.approx(days[100_384])
    assert 7 < days[2_416] < 7.2


def test_fair_share_stays_per_tenant_across_its_size_queues() -> None:
    # Tenant b (pool B) holds the machine with a big job until t=1000; then a (pool A, no
    # usage) and b both wait. b's small job is a queue of its own, but it carries b's usage:
    # a's big job, fair share first, starts before it despite the size factor.
    jobs = [
        {"submit": 0, "runtime": 1_000, "size": 4, "tenant": "b"},
        {"submit": 1, "runtime": 10, "size": 1, "tenant": "b"},
        {"submit": 2, "runtime": 10, "size": 4, "tenant": "a"},
    ]
    policy = Multifactor(job_size_weight=1_000)
    _, outcome, _ = run(
        FOUR,
        jobs,
        policy,
        pools=("A", "B"),
        entitled=(0.5, 0.5),
        tenant_pools={"a": "A", "b": "B"},
    )
    assert outcome.start.tolist() == [0, 1_010, 1_000]
    # Keys (a, 4), (b, 1), (b, 4); the fair-share factor is looked up by the key's tenant.
    assert policy.key_tenant == [0, 1, 1]
    assert policy.factor[0] == 1.0 and policy.factor[1] == 0.5
    # Without the size factor's keys b's small job would still rank by b's usage: same order.
    _, plain, _ = run(
        FOUR,
        jobs,
        "multifactor",
        pools=("A", "B"),
        entitled=(0.5, 0.5),
        tenant_pools={"a": "A", "b": "B"},
    )
    assert plain.start.tolist() == [0, 1_010, 1_000]


def test_a_negative_size_weight_is_refused() -> None:
    with pytest.raises(InvalidInput, match="job-size weight"):
        Multifactor(job_size_weight=-1)


class _Capped(Multifactor):
    """Multifactor (a queue per tenant) whose pool 0 may hold at most two accelerators."""

    def bind(self, state):
        self.caps = [2, math.inf]
        return super().bind(state)


def test_a_capped_pool_starts_nothing_beyond_its_cap_and_others_pass_it() -> None:
    # Pool a's four 1-accelerator jobs come first, then b's: a may hold 2, so two of a's
    # wait while b's two start on the free accelerators; a's next start when its own end.
    jobs = [{"submit": 0, "runtime": 100, "size": 1, "tenant": "a"} for _ in range(4)]
    jobs += [{"submit": 1, "runtime": 300, "size": 1, "tenant": "b"} for _ in range(2)]
    _, outcome, _ = run(
        FOUR,
        jobs,
        _Capped(),
        pools=("pa", "pb"),
        entitled=(0.5, 0.5),
        tenant_pools={"a": "pa", "b": "pb"},
    )
    assert outcome.start.tolist() == [0, 0, 100, 100, 1, 1]


def _bound_commonlab(**options) -> tuple[CommonlabPolicy, State]:
    """commonlab's policy bound to a two-pool facility of four accelerators, each pool
    entitled to half; pool pa's job 0 of 4 accelerators waits, pool pb's jobs 1 and 2 of
    one."""
    jobs = [{"submit": 0, "runtime": 100, "size": 4, "tenant": "a"}]
    jobs += [{"submit": 0, "runtime": 100, "size": 1, "tenant": "b"} for _ in range(2)]
    parts = partitions(FOUR)
    workload = build_workload(
        [trace(jobs)], pools=["pa", "pb"], tenant_pools={"a": "pa", "b": "pb"}
    )
    workload, eligible = bind_classes(workload, parts)
    state = State(workload, parts, eligible, [0.5, 0.5])
    # A budget of the whole fleet an hour: the gang of four is within it.
    policy = CommonlabPolicy(**{"reclaim": replace(RECLAIM, budget=1.0), **options})
    policy.bind(state)
    return policy, state


def _reserve(policy: CommonlabPolicy, state: State, run: int, *, held: list[int]) -> None:
    """The last backfill pass held room for `run`; the pools hold `held`; the last plan's
    targets are two accelerators each; then a recalculation."""
    state.reserved, state.reserved_pool = run, int(state.workload.pool[run])
    state.reserved_size = int(state.workload.accelerators[run])
    state.pool_running = list(held)
    policy._targets = {"0": 2.0, "1": 2.0}
    policy.on_tick(state.now)


def test_the_reserved_job_of_a_pool_at_or_under_its_target_keeps_the_top_until_it_starts():
    policy, state = _bound_commonlab()
    before = policy.priority(0, 1)

    _reserve(policy, state, 0, held=[2, 2])  # pa at its target: its gang is pinned

    assert policy.priority(0, 0) > 1e9 > before
    # Pinned until it starts (a Nice on Slurm stays), even once its pool holds more.
    _reserve(policy, state, 1, held=[3, 2])
    assert policy.priority(0, 0) > 1e9


def test_the_reserved_job_of_a_pool_above_its_target_is_not_pinned():
    policy, state = _bound_commonlab()
    _reserve(policy, state, 1, held=[0, 3])  # pb above its target
    assert policy.priority(1, 1) < 1e9
    unpinned, state = _bound_commonlab(pin=False)
    _reserve(unpinned, state, 0, held=[0, 0])
    assert unpinned.priority(0, 0) < 1e9


def test_a_run_larger_than_the_hourly_budget_is_not_pinned():
    """Preemption could not take it back but by its turn (`share_controller.pins`)."""
    policy, state = _bound_commonlab(reclaim=RECLAIM)  # a quarter of four accelerators
    _reserve(policy, state, 0, held=[0, 0])
    assert policy.priority(0, 0) < 1e9
