"""Fair Tree ranks tenants by *decayed* usage: what a tenant used long ago counts for less,
halving every half-life (Slurm's PriorityDecayHalfLife). Without decay an old burst would
hold a tenant back for ever."""

from __future__ import annotations

import pytest

from commonlab.simulator.policies import Multifactor
from tests.simulator.helpers import fleet, run

DAY = 86_400
ONE = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 1})

# a used the machine for 10 days long ago; b for 5 days just now. At t=45d both wait with
# one-hour jobs submitted together. Decayed with a 7-day half-life, a's burst counts
# 7/ln2 * (2^-5 - 2^-45/7) = 0.20 days against b's 7/ln2 * (1 - 2^-5/7) = 3.9 days: a goes
# first. Undecayed, a's 10 days outweigh b's 5 and b goes first.
OLD_BURST_THEN_RECENT = [
    {"submit": 0, "runtime": 10 * DAY, "size": 1, "tenant": "a"},
    {"submit": 40 * DAY, "runtime": 5 * DAY, "size": 1, "tenant": "b"},
    {"submit": 44 * DAY, "runtime": 3600, "size": 1, "tenant": "b"},
    {"submit": 44 * DAY, "runtime": 3600, "size": 1, "tenant": "a"},
]


def _run(half_life: float) -> tuple[Multifactor, list[float]]:
    policy = Multifactor()
    policy.half_life = half_life
    workload, outcome, _ = run(ONE, OLD_BURST_THEN_RECENT, policy)
    assert workload.tenants == ["t/a", "t/b"]  # trace "t"
    return policy, outcome.start.tolist()


def test_an_old_burst_decays_and_no_longer_holds_its_tenant_back() -> None:
    _, decayed = _run(7 * DAY)
    _, undecayed = _run(float("inf"))
    assert decayed[2:] == [45 * DAY + 3600, 45 * DAY]  # a's job first
    assert undecayed[2:] == [45 * DAY, 45 * DAY + 3600]  # b's job first


@pytest.mark.parametrize("half_life", [7 * DAY, 2 * DAY])
def test_usage_halves_every_half_life(half_life: float) -> None:
    policy, _ = _run(half_life)
    before = list(policy._decayed)
    assert all(usage > 0 for usage in before)
    policy.on_tick(policy._last + half_life)  # nothing runs any more: only decay
    assert policy._decayed == pytest.approx([usage / 2 for usage in before])
    policy.on_tick(policy._last + 2 * half_life)
    assert policy._decayed == pytest.approx([usage / 8 for usage in before])


def test_without_decay_usage_stays_whole() -> None:
    policy, _ = _run(float("inf"))
    before = list(policy._decayed)
    policy.on_tick(policy._last + 365 * DAY)
    assert policy._decayed == before
