"""Figures of one simulated run: utilisation, idle accelerators while jobs wait, job
completion time and queueing delay, makespan, delivered versus entitled share per pool per
day and per week, Jain's fairness index, and fidelity against recorded waits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from commonlab.simulator.engine import Outcome
from commonlab.simulator.workload import Workload

__all__ = ["DAY", "HOUR", "WEEK", "fidelity", "jain", "measure", "share_windows"]

HOUR = 3_600.0
DAY = 86_400.0
WEEK = 7 * DAY
# A pool "has work waiting" in a window when some of its jobs wait for at least this much of it.
WAITING_FRACTION = 0.5


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all values are equal, 1/n when one value takes all."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0 or not np.any(x):
        return 1.0
    return float(x.sum() ** 2 / (len(x) * np.square(x).sum()))


def _integral_at(times: np.ndarray, deltas: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The integral from 0 to each point of the step function that changes by deltas[i] at
    times[i] (starting from 0)."""
    if len(times) == 0:
        return np.zeros(len(points))
    order = np.argsort(times, kind="stable")
    t, level = times[order], np.cumsum(deltas[order])
    area = np.concatenate(([0.0], np.cumsum(level[:-1] * np.diff(t))))
    # Before the first change the function is 0; after the last, level[-1].
    result = np.interp(points, t, area, left=0.0)
    beyond = points > t[-1]
    result[beyond] = area[-1] + level[-1] * (points[beyond] - t[-1])
    return result


def share_windows(
    workload: Workload, outcome: Outcome, entitled: Sequence[float], window: float
) -> dict[str, Any]:
    """Delivered share of each pool per window (of all accelerator-seconds delivered in the
    window), the entitled share, and whether the pool had work waiting; windows cover the
    period while jobs arrive or wait (up to the last start)."""
    horizon = float(np.nanmax(outcome.start)) if len(workload) else 0.0
    count = max(1, int(np.ceil(horizon / window)))
    edges = np.arange(count + 1, dtype=np.float64) * window
    acc = workload.accelerators.astype(np.float64)
    start, end, submit = outcome.start, outcome.end, workload.submit
    delivered = np.zeros((len(workload.pools), count))
    waited = np.zeros((len(workload.pools), count))
    for p in range(len(workload.pools)):
        mine = workload.pool == p
        if not mine.any():
            continue
        times = np.concatenate((start[mine], end[mine]))
        deltas = np.concatenate((acc[mine], -acc[mine]))
        delivered[p] = np.diff(_integral_at(times, deltas, edges))
        # Waiting indicator: count of waiting jobs > 0, integrated.
        times = np.concatenate((submit[mine], start[mine]))
        deltas = np.concatenate((np.ones(mine.sum()), -np.ones(mine.sum())))
        order = np.argsort(times, kind="stable")
        t, level = times[order], np.cumsum(deltas[order])
        indicator = (level > 0).astype(np.float64)
        steps = np.diff(np.concatenate(([0.0], indicator)))
        waited[p] = np.diff(_integral_at(t, steps, edges))
    total = delivered.sum(axis=0)
    share = np.divide(delivered, total, out=np.zeros_like(delivered), where=total > 0)
    lengths = np.diff(edges)
    has_waiting = waited >= WAITING_FRACTION * lengths
    return {
        "edges": edges,
        "share": share,
        "waiting": has_waiting,
        "entitled": np.asarray(entitled, dtype=np.float64),
    }


def _deviation(windows: dict[str, Any], pools: Sequence[str]) -> dict[str, Any]:
    share, waiting, entitled = windows["share"], windows["waiting"], windows["entitled"]
    gap = share - entitled[:, None]
    counted = np.where(waiting, gap, np.nan)
    per_pool = {}
    for p, name in enumerate(pools):
        row = counted[p][~np.isnan(counted[p])]
        per_pool[name] = {
            "windows_waiting": len(row),
            "max_shortfall": float(max(0.0, -row.min())) if len(row) else 0.0,
            "max_abs_deviation": float(np.abs(row).max()) if len(row) else 0.0,
        }
    valid = counted[~np.isnan(counted)]
    ratios = [
        jain(share[waiting[:, w], w] / entitled[waiting[:, w]])
        for w in range(share.shape[1])
        if waiting[:, w].sum() > 1
    ]
    return {
        "max_shortfall": float(max(0.0, -valid.min())) if len(valid) else 0.0,
        "max_abs_deviation": float(np.abs(valid).max()) if len(valid) else 0.0,
        "jain": float(np.mean(ratios)) if ratios else 1.0,
        "pools": per_pool,
    }


def measure(
    workload: Workload, outcome: Outcome, *, capacity: int, entitled: Sequence[float]
) -> dict[str, Any]:
    """Every figure of one run, as plain numbers (JSON-ready)."""
    submit, start, end = workload.submit, outcome.start, outcome.end
    acc = workload.accelerators.astype(np.float64)
    wait = start - submit
    jct = end - submit
    makespan = float(end.max() - submit.min()) if len(workload) else 0.0
    busy = float(np.dot(acc, end - start))
    times = np.concatenate((start, end, submit, start))
    zeros = np.zeros(len(workload))
    run_delta = np.concatenate((acc, -acc, zeros, zeros))
    wait_delta = np.concatenate((zeros, zeros, zeros + 1, zeros - 1))
    order = np.argsort(times, kind="stable")
    t = times[order]
    running = np.cumsum(run_delta[order])
    queued = np.cumsum(wait_delta[order])
    dt = np.diff(t)
    idle_waiting = float(np.sum((capacity - running[:-1]) * (queued[:-1] > 0) * dt))
    hour = share_windows(workload, outcome, entitled, HOUR)
    day = share_windows(workload, outcome, entitled, DAY)
    week = share_windows(workload, outcome, entitled, WEEK)
    # Utilisation while jobs arrive or wait (up to the last start) is what a policy controls;
    # over the makespan the drain of the last long jobs dominates.
    horizon = float(start.max() - submit.min()) if len(workload) else 0.0
    done_in_horizon = acc * (np.clip(end, None, horizon) - np.clip(start, None, horizon))
    in_horizon = float(done_in_horizon.sum())
    return {
        "jobs": len(workload),
        "utilisation": in_horizon / (capacity * horizon) if horizon else 0.0,
        "utilisation_makespan": busy / (capacity * makespan) if makespan else 0.0,
        "idle_while_waiting_accelerator_hours": idle_waiting / 3600,
        "idle_while_waiting_fraction": idle_waiting / (capacity * makespan) if makespan else 0.0,
        "mean_jct_h": float(jct.mean() / 3600) if len(jct) else 0.0,
        "p99_jct_h": float(np.percentile(jct, 99) / 3600) if len(jct) else 0.0,
        "mean_wait_h": float(wait.mean() / 3600) if len(wait) else 0.0,
        "p99_wait_h": float(np.percentile(wait, 99) / 3600) if len(wait) else 0.0,
        "makespan_days": makespan / DAY,
        "backfilled_jobs": outcome.backfilled,
        "preemptions": outcome.preemptions,
        "lost_accelerator_hours": outcome.lost_accelerator_seconds / 3600,
        "share_hour": _deviation(hour, workload.pools),
        "share_day": _deviation(day, workload.pools),
        "share_week": _deviation(week, workload.pools),
        "per_pool": _per_pool(workload, wait, done_in_horizon, entitled),
        "hourly_share": {
            "edges_h": (hour["edges"] / HOUR).tolist(),
            "pools": {name: hour["share"][p].tolist() for p, name in enumerate(workload.pools)},
            "waiting": {name: hour["waiting"][p].tolist() for p, name in enumerate(workload.pools)},
            "entitled": dict(zip(workload.pools, hour["entitled"].tolist(), strict=True)),
        },
    }


def _per_pool(
    workload: Workload, wait: np.ndarray, done: np.ndarray, entitled: Sequence[float]
) -> dict[str, dict[str, float]]:
    """Queueing delay and delivered share (of the accelerator-time delivered while jobs
    arrived or waited) per pool: what a regulation changes for each member state."""
    total = float(done.sum())
    result = {}
    for p, name in enumerate(workload.pools):
        mine = workload.pool == p
        waits = wait[mine]
        result[name] = {
            "entitled": float(entitled[p]),
            "jobs": int(mine.sum()),
            "mean_wait_h": float(waits.mean() / 3600) if len(waits) else 0.0,
            "p99_wait_h": float(np.percentile(waits, 99) / 3600) if len(waits) else 0.0,
            "delivered": float(done[mine].sum()) / total if total else 0.0,
        }
    return result


def fidelity(workload: Workload, outcome: Outcome) -> dict[str, float]:
    """Simulated against recorded queueing delays (seconds), for jobs with a recorded one."""
    known = ~np.isnan(workload.recorded_wait)
    recorded = workload.recorded_wait[known]
    simulated = (outcome.start - workload.submit)[known]
    if len(recorded) < 2:
        return {"jobs": len(recorded)}

    def ranks(x: np.ndarray) -> np.ndarray:
        # Tied values share their average rank (Spearman's convention).
        position = np.empty(len(x))
        position[np.argsort(x, kind="stable")] = np.arange(len(x))
        _, tie, count = np.unique(x, return_inverse=True, return_counts=True)
        return (np.bincount(tie, position) / count)[tie]

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        if a.std() == 0 or b.std() == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    return {
        "jobs": len(recorded),
        "recorded_median_s": float(np.median(recorded)),
        "recorded_p90_s": float(np.percentile(recorded, 90)),
        "recorded_mean_s": float(recorded.mean()),
        "simulated_median_s": float(np.median(simulated)),
        "simulated_p90_s": float(np.percentile(simulated, 90)),
        "simulated_mean_s": float(simulated.mean()),
        "pearson": corr(recorded, simulated),
        "spearman": corr(ranks(recorded), ranks(simulated)),
        "mean_abs_error_s": float(np.abs(recorded - simulated).mean()),
    }
