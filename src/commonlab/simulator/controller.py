"""The share controller: compares delivered with entitled share per pool over a window and
moves each pool's fair-share weight in bounded steps. Pure; the simulator calls it, and the
production wiring (Slurm `Fairshare` per member-state account) will call it the same way."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ControllerSettings", "next_weights"]


@dataclass(frozen=True)
class ControllerSettings:
    """gain: how far one window's relative error moves a weight (log scale);
    max_step: largest relative change of a weight in one window (0.25 = ±25%);
    floor, ceiling: weights stay within [floor, ceiling] x the entitled share."""

    gain: float = 1.0
    max_step: float = 0.25
    floor: float = 0.2
    ceiling: float = 5.0

    def __post_init__(self) -> None:
        if not (self.gain > 0 and 0 < self.max_step < 1 and 0 < self.floor <= 1 <= self.ceiling):
            raise ValueError(
                "controller settings need gain > 0, 0 < max_step < 1 and 0 < floor <= 1 <= ceiling"
            )


def next_weights(
    *,
    entitled: Mapping[str, float],
    delivered: Mapping[str, float],
    weights: Mapping[str, float],
    waiting: Mapping[str, bool],
    settings: ControllerSettings = ControllerSettings(),
) -> dict[str, float]:
    """New weight per pool after one window.

    `entitled`: share of capacity per pool (sums to 1); `delivered`: accelerator-seconds
    each pool received in the window; `weights`: current weights; `waiting`: whether the
    pool had work waiting in the window. Only pools with work waiting compete, so each one's
    target is its entitlement renormalised over them, times what they received together. A
    pool without waiting work drifts back toward its entitlement (no wind-up)."""
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
        if pool in competing and got > 0:
            target = share / share_sum * got
            error = (target - delivered.get(pool, 0.0)) / target
            step = settings.gain * error
        else:
            step = math.log(share / weight) if weight > 0 else high
        step = min(high, max(low, step))
        moved = weight * math.exp(step)
        result[pool] = min(share * settings.ceiling, max(share * settings.floor, moved))
    return result
