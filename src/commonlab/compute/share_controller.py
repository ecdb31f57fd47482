"""The share controller: compares what each pool received with what its entitlement gave it
over a window and moves each pool's fair-share weight in bounded steps. Pure, plain dicts in
and out; production calls it (accounts.py: Slurm `Fairshare` per member-state account), and
the simulator runs the same code (simulator/policies.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ControllerSettings", "fair_split", "next_weights"]


@dataclass(frozen=True)
class ControllerSettings:
    """gain: how far one window's relative error moves a weight (log scale);
    max_step: largest relative change of a weight in one window (0.25 = ±25%);
    floor, ceiling: weights stay within [floor, ceiling] x the entitled share;
    deadband: an error smaller than this (points of what the pools received together) moves
    nothing but a slow return toward the entitlement, so a pool on target keeps its weight
    and the scheduler's order is left alone;
    relax: the fraction of the way back to the entitlement a weight moves in a window where
    its pool is within the deadband or has no work waiting."""

    gain: float = 1.0
    max_step: float = 0.25
    floor: float = 0.2
    ceiling: float = 5.0
    deadband: float = 0.0
    relax: float = 1.0

    def __post_init__(self) -> None:
        if not (
            self.gain > 0
            and 0 < self.max_step < 1
            and 0 < self.floor <= 1 <= self.ceiling
            and 0 <= self.deadband < 1
            and 0 <= self.relax <= 1
        ):
            raise ValueError(
                "controller settings need gain > 0, 0 < max_step < 1, "
                "0 < floor <= 1 <= ceiling, 0 <= deadband < 1 and 0 <= relax <= 1"
            )


def fair_split(
    total: float, *, entitled: Mapping[str, float], demand: Mapping[str, float]
) -> dict[str, float]:
    """Weighted max-min fair split of `total` (accelerators) among pools asking for
    `demand` (running plus waiting): each pool gets min(demand, level x entitled share), the
    level set so the parts add up to `total` (or every pool gets its demand). What a pool
    does not ask for goes to the others in proportion to their entitlements."""
    pools = [p for p in entitled if entitled[p] > 0]
    result = {p: 0.0 for p in entitled}
    remaining = total
    active = sorted(pools, key=lambda p: demand.get(p, 0.0) / entitled[p])
    weight = sum(entitled[p] for p in active)
    for i, pool in enumerate(active):
        level = remaining / weight if weight > 0 else 0.0
        want = demand.get(pool, 0.0)
        if want <= level * entitled[pool]:
            result[pool] = want
            remaining -= want
            weight -= entitled[pool]
            continue
        for rest in active[i:]:
            result[rest] = level * entitled[rest]
        break
    return result


def next_weights(
    *,
    entitled: Mapping[str, float],
    delivered: Mapping[str, float],
    weights: Mapping[str, float],
    waiting: Mapping[str, bool],
    fair: Mapping[str, float] | None = None,
    settings: ControllerSettings = ControllerSettings(),
) -> dict[str, float]:
    """New weight per pool after one window.

    `entitled`: share of capacity per pool (sums to 1); `delivered`: accelerator-seconds
    each pool received in the window (or while it had work waiting); `weights`: current
    weights; `waiting`: whether the pool had work waiting in the window. `fair`: the
    accelerator-seconds each pool's entitlement gave it over the same time (see
    `fair_split`); without it, only pools with work waiting compete and each one's target
    is its entitlement renormalised over them, times what they received together. A pool
    without waiting work, or within the deadband, drifts back toward its entitlement (no
    wind-up)."""
    competing = [p for p in entitled if waiting.get(p)]
    got = sum(delivered.get(p, 0.0) for p in competing)
    share_sum = sum(entitled[p] for p in competing)
    low, high = math.log1p(-settings.max_step), math.log1p(settings.max_step)
    result: dict[str, float] = {}
    for pool, share in entitled.items():
        weight = weights.get(pool, share)
        if share <= 0:
            result[pool] = 0.0
            continue
        back = math.log(share / weight) if weight > 0 else high
        if fair is not None:
            target = fair.get(pool, 0.0)
        else:
            target = share / share_sum * got if pool in competing and got > 0 else 0.0
        error = target - delivered.get(pool, 0.0)
        if pool in competing and target > 0 and abs(error) > settings.deadband * got:
            step = settings.gain * error / target
        else:
            step = settings.relax * back
        step = min(high, max(low, step))
        moved = weight * math.exp(step)
        result[pool] = min(share * settings.ceiling, max(share * settings.floor, moved))
    return result
