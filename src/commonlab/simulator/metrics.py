"""Figures of one simulated run: utilisation, idle accelerators while jobs wait, job
completion time and queueing delay, makespan, delivered versus entitled share per pool per
day and per week, Jain's fairness index, and fidelity against recorded waits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from commonlab.simulator import targets
from commonlab.simulator.engine import Outcome
from commonlab.simulator.targets import OURS, PolicyFigures
from commonlab.simulator.workload import Workload

__all__ = [
    "DAY",
    "HOUR",
    "WEEK",
    "ShareGrid",
    "check_targets",
    "fidelity",
    "jain",
    "ks_statistic",
    "measure",
    "pool_demand",
    "share_grid",
    "share_windows",
]

HOUR = 3_600.0
DAY = 86_400.0
WEEK = 7 * DAY
# Share figures are integrated on cells of this many seconds.
RESOLUTION = 60.0
# A pool's window counts when the pool had work waiting for at least this long in it (half
# the window for windows under two hours).
MIN_WAITING = 3_600.0


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


def _runs(workload: Workload, outcome: Outcome) -> tuple[np.ndarray, ...]:
    """Every run as (job, start, end): each job's last run, then the runs preemption cut
    short; and the waiting events as (time, +1 or -1, job): a job waits from its submission
    to its first start, and again from each preemption to its next start."""
    n = len(workload)
    job = np.concatenate((np.arange(n), outcome.cut_job))
    start = np.concatenate((outcome.start, outcome.cut_start))
    end = np.concatenate((outcome.end, outcome.cut_end))
    wait_time = np.concatenate((workload.submit, start, outcome.cut_end))
    wait_delta = np.concatenate((np.ones(n), -np.ones(len(start)), np.ones(len(outcome.cut_end))))
    wait_job = np.concatenate((np.arange(n), job, outcome.cut_job))
    return job, start, end, wait_time, wait_delta, wait_job


@dataclass
class ShareGrid:
    """Per pool and cell of `step` seconds from 0, up to the last start (whole weeks):
    `rate`, mean accelerators in use; `waited`, the fraction of the cell the pool had work
    waiting; `fair`, the accelerators its entitlement gave it then (see `_fair_split`)."""

    step: float
    horizon: float
    entitled: np.ndarray
    rate: np.ndarray
    waited: np.ndarray
    fair: np.ndarray


def share_grid(
    workload: Workload,
    outcome: Outcome,
    entitled: Sequence[float],
    *,
    resolution: float = RESOLUTION,
) -> ShareGrid:
    horizon = float(np.nanmax(outcome.start)) if len(workload) else 0.0
    cells = max(1, int(np.ceil(horizon / WEEK))) * round(WEEK / resolution)
    edges = np.arange(cells + 1, dtype=np.float64) * resolution
    job, start, end, wait_time, wait_delta, wait_job = _runs(workload, outcome)
    acc = workload.accelerators.astype(np.float64)
    run_pool, wait_pool = workload.pool[job], workload.pool[wait_job]
    n_pools = len(workload.pools)
    rate = np.zeros((n_pools, cells))
    waited = np.zeros((n_pools, cells))
    queued = np.zeros((n_pools, cells))
    for p in range(n_pools):
        mine = run_pool == p
        times = np.concatenate((start[mine], end[mine]))
        deltas = np.concatenate((acc[job[mine]], -acc[job[mine]]))
        rate[p] = np.diff(_integral_at(times, deltas, edges)) / resolution
        mine = wait_pool == p
        times, deltas = wait_time[mine], wait_delta[mine]
        queued[p] = np.diff(_integral_at(times, deltas * acc[wait_job[mine]], edges)) / resolution
        order = np.argsort(times, kind="stable")
        t, level = times[order], np.cumsum(deltas[order])
        steps = np.diff(np.concatenate(([0.0], (level > 0.5).astype(np.float64))))
        waited[p] = np.diff(_integral_at(t, steps, edges)) / resolution
    e = np.asarray(entitled, dtype=np.float64)
    fair = _fair_split(rate.sum(axis=0), e, rate + queued)
    return ShareGrid(resolution, horizon, e, rate, waited, fair)


def _fair_split(total: np.ndarray, weights: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Weighted max-min fair split of `total` (per cell) among pools with `demand` (pools x
    cells): each pool gets min(demand, level x weight), the level chosen so the parts add up
    to the total; what a pool does not ask for goes to the others in proportion to their
    weights (water-filling)."""
    pools, cells = demand.shape
    if not pools or not cells:
        return np.zeros_like(demand)
    ratio = demand / weights[:, None]
    order = np.argsort(ratio, axis=0, kind="stable")
    d = np.take_along_axis(demand, order, axis=0)
    w = weights[order]
    r = np.take_along_axis(ratio, order, axis=0)
    capped = np.vstack((np.zeros(cells), np.cumsum(d, axis=0)[:-1]))  # demand of the first k
    rest = np.cumsum(w[::-1], axis=0)[::-1]  # weight of pools k.. (pools x cells)
    level = (total[None, :] - capped) / rest
    ok = level <= r + 1e-9
    first = np.where(ok.any(axis=0), ok.argmax(axis=0), pools)
    chosen = np.take_along_axis(level, np.minimum(first, pools - 1)[None, :], axis=0)[0]
    index = np.arange(pools)[:, None]
    split = np.where(index < first[None, :], d, chosen[None, :] * w)
    result = np.empty_like(split)
    np.put_along_axis(result, order, split, axis=0)
    return result


def share_windows(
    workload: Workload,
    outcome: Outcome,
    entitled: Sequence[float],
    window: float,
    *,
    grid: ShareGrid | None = None,
) -> dict[str, Any]:
    """Delivered against entitled share per pool and window, over the period while jobs
    arrive or wait (up to the last start).

    Per (pool, window), measured over the time inside the window during which the pool had
    work waiting (cells weighted by the fraction of the cell it waited): `got`, the
    accelerator-seconds it received; `all`, those the facility delivered to everyone;
    `fair`, what its entitlement gave it then: the accelerators delivered to everyone,
    split by weighted max-min fairness over what each pool asked for (its running plus its
    waiting accelerators), with the entitlements as weights. So a pool that asks for more
    than its entitled share gets at least its entitled share of what is delivered, and
    what pools do not ask for is shared among those that do in proportion to their
    entitlements. Also `share`: each pool's share of all accelerator-seconds delivered in
    the whole window (the literal reading, and for charts)."""
    g = grid or share_grid(workload, outcome, entitled)
    per = round(window / g.step)
    cells = g.rate.shape[1]
    count = min(cells // per, max(1, int(np.ceil(g.horizon / window))))
    used = count * per
    shape = (g.rate.shape[0], count, per)

    def per_window(x: np.ndarray) -> np.ndarray:
        return x[:, :used].reshape(shape).sum(axis=2) * g.step

    total = g.rate.sum(axis=0)
    in_window = per_window(g.rate)
    window_total = in_window.sum(axis=0)
    return {
        "edges": np.arange(count + 1, dtype=np.float64) * window,
        "entitled": g.entitled,
        "waited_s": per_window(g.waited),
        "got": per_window(g.waited * g.rate),
        "all": per_window(g.waited * total[None, :]),
        "fair": per_window(g.waited * g.fair),
        "share": np.divide(
            in_window, window_total, out=np.zeros_like(in_window), where=window_total > 0
        ),
        "min_waiting_s": min(MIN_WAITING, window / 2),
    }


def _deviation(windows: dict[str, Any], pools: Sequence[str]) -> dict[str, Any]:
    """Per pool, over the windows it had work waiting for at least `min_waiting_s`, in
    points of what the facility delivered while the pool waited: the largest |got - fair|
    (`max_abs_deviation`) and the largest fair - got (`max_shortfall`); and, for the
    literal reading, the largest |share of the window - entitled| (`max_raw_deviation`:
    it counts a surplus that pools without work left unused as a deviation)."""
    entitled = windows["entitled"]
    counted = windows["waited_s"] >= windows["min_waiting_s"]
    everyone = windows["all"]
    safe = np.where(everyone > 0, everyone, 1.0)
    fair = np.where(everyone > 0, (windows["got"] - windows["fair"]) / safe, 0.0)
    share = windows["share"]
    raw = share - entitled[:, None]
    per_pool = {}
    for p, name in enumerate(pools):
        mask = counted[p]
        rows = fair[p][mask]
        per_pool[name] = {
            "windows_waiting": int(mask.sum()),
            "hours_waiting": float(windows["waited_s"][p].sum() / HOUR),
            "max_abs_deviation": _max_abs(rows),
            "max_shortfall": float(max(0.0, -rows.min())) if len(rows) else 0.0,
            "worst_deviation": _signed_worst(rows),
            "max_raw_deviation": _max_abs(raw[p][mask]),
        }
    # Jain's index of received / fair over the pools that waited, per window.
    received = np.divide(
        windows["got"], windows["fair"], out=np.ones_like(share), where=windows["fair"] > 0
    )
    ratios = [
        jain(received[counted[:, w], w]) for w in range(share.shape[1]) if counted[:, w].sum() > 1
    ]
    return {
        "max_abs_deviation": max((v["max_abs_deviation"] for v in per_pool.values()), default=0.0),
        "max_shortfall": max((v["max_shortfall"] for v in per_pool.values()), default=0.0),
        "max_raw_deviation": max((v["max_raw_deviation"] for v in per_pool.values()), default=0.0),
        "jain": float(np.mean(ratios)) if ratios else 1.0,
        "windows": int(share.shape[1]),
        "pools": per_pool,
    }


def _max_abs(x: np.ndarray) -> float:
    return float(np.abs(x).max()) if len(x) else 0.0


def _signed_worst(x: np.ndarray) -> float:
    return float(x[np.argmax(np.abs(x))]) if len(x) else 0.0


def measure(
    workload: Workload, outcome: Outcome, *, capacity: int, entitled: Sequence[float]
) -> dict[str, Any]:
    """Every figure of one run, as plain numbers (JSON-ready). Utilisation counts the work
    of runs that completed; `utilisation_busy` adds the runs preemption cut short."""
    submit, start, end = workload.submit, outcome.start, outcome.end
    acc = workload.accelerators.astype(np.float64)
    cut = outcome.preempted_seconds
    wait = start - submit - (cut if cut is not None else 0.0)
    jct = end - submit
    makespan = float(end.max() - submit.min()) if len(workload) else 0.0
    busy = float(np.dot(acc, end - start))
    run_job, run_start, run_end, wait_time, wait_delta, _ = _runs(workload, outcome)
    run_acc = acc[run_job]
    times = np.concatenate((run_start, run_end, wait_time))
    run_delta = np.concatenate((run_acc, -run_acc, np.zeros(len(wait_time))))
    queue_delta = np.concatenate((np.zeros(2 * len(run_start)), wait_delta))
    order = np.argsort(times, kind="stable")
    t = times[order]
    running = np.cumsum(run_delta[order])
    queued = np.cumsum(queue_delta[order])
    dt = np.diff(t)
    idle_waiting = float(np.sum((capacity - running[:-1]) * (queued[:-1] > 0.5) * dt))
    grid = share_grid(workload, outcome, entitled)
    hour = share_windows(workload, outcome, entitled, HOUR, grid=grid)
    day = share_windows(workload, outcome, entitled, DAY, grid=grid)
    week = share_windows(workload, outcome, entitled, WEEK, grid=grid)
    # Utilisation is taken while jobs arrive: a window every policy shares, where what it
    # controls (packing, reservations, preemption) shows. Up to each policy's last start,
    # a policy that leaves some jobs to the end is charged for the drain; over the
    # makespan, the last long jobs dominate.
    cut_acc = acc[outcome.cut_job]

    def work_until(limit: float) -> tuple[np.ndarray, float]:
        done = acc * (np.clip(end, None, limit) - np.clip(start, None, limit))
        cut = np.clip(outcome.cut_end, None, limit) - np.clip(outcome.cut_start, None, limit)
        if len(outcome.cut_kept) == len(cut):
            # The work a cut run's checkpoint kept is done (its job resumed from there).
            kept_until = np.clip(outcome.cut_start + outcome.cut_kept, None, limit)
            kept = kept_until - np.clip(outcome.cut_start, None, limit)
            np.add.at(done, outcome.cut_job, cut_acc * kept)
            cut = cut - kept
        return done, float(np.dot(cut_acc, cut))

    arrivals = float(submit.max()) if len(workload) else 0.0
    done_arriving, lost_arriving = work_until(arrivals)
    in_arrivals = float(done_arriving.sum())
    horizon = float(start.max()) if len(workload) else 0.0
    done_in_horizon, lost_in_horizon = work_until(horizon)
    in_horizon = float(done_in_horizon.sum())
    held_by_cut = outcome.cut_end - outcome.cut_start
    if len(outcome.cut_kept) == len(held_by_cut):
        held_by_cut = held_by_cut - outcome.cut_kept
    lost_by_pool = np.bincount(
        workload.pool[outcome.cut_job],
        weights=cut_acc * held_by_cut,
        minlength=len(workload.pools),
    )
    cuts_by_pool = np.bincount(workload.pool[outcome.cut_job], minlength=len(workload.pools))
    return {
        "jobs": len(workload),
        "utilisation": in_arrivals / (capacity * arrivals) if arrivals else 0.0,
        "utilisation_busy": (in_arrivals + lost_arriving) / (capacity * arrivals)
        if arrivals
        else 0.0,
        "utilisation_to_last_start": in_horizon / (capacity * horizon) if horizon else 0.0,
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
        "preempted_jobs": len(np.unique(outcome.cut_job)),
        "lost_accelerator_hours": outcome.lost_accelerator_seconds / 3600,
        "lost_fraction": lost_in_horizon / (in_horizon + lost_in_horizon) if in_horizon else 0.0,
        "share_hour": _deviation(hour, workload.pools),
        "share_day": _deviation(day, workload.pools),
        "share_week": _deviation(week, workload.pools),
        "per_pool": _per_pool(
            workload, wait, done_in_horizon, entitled, cuts_by_pool, lost_by_pool
        ),
        "hourly_share": _series(hour, workload.pools, HOUR),
        "daily_share": _series(day, workload.pools, DAY),
        "weekly_share": _series(week, workload.pools, WEEK),
    }


def _series(windows: dict[str, Any], pools: Sequence[str], unit: float) -> dict[str, Any]:
    """Per pool and window: share of all delivered, whether counted, and got - fair over the
    time the pool waited (None where it did not count), for charts."""
    counted = windows["waited_s"] >= windows["min_waiting_s"]
    everyone = windows["all"]
    fair = np.where(
        everyone > 0, (windows["got"] - windows["fair"]) / np.where(everyone > 0, everyone, 1), 0
    )
    return {
        "edges": (windows["edges"] / unit).tolist(),
        "pools": {name: windows["share"][p].tolist() for p, name in enumerate(pools)},
        "waiting": {name: counted[p].tolist() for p, name in enumerate(pools)},
        "fair_deviation": {
            name: [float(v) if c else None for v, c in zip(fair[p], counted[p], strict=True)]
            for p, name in enumerate(pools)
        },
        "entitled": dict(zip(pools, windows["entitled"].tolist(), strict=True)),
    }


def _per_pool(
    workload: Workload,
    wait: np.ndarray,
    done: np.ndarray,
    entitled: Sequence[float],
    cuts: np.ndarray,
    lost: np.ndarray,
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
            "preemptions": int(cuts[p]),
            "lost_accelerator_hours": float(lost[p]) / 3600,
        }
    return result


def fidelity(workload: Workload, outcome: Outcome) -> dict[str, Any]:
    """Simulated against recorded queueing delays (seconds), for jobs with a recorded one:
    quantiles side by side, Spearman's rank correlation (None when either side is
    constant), Pearson's correlation, the two-sample Kolmogorov-Smirnov statistic (largest
    gap between the two distribution functions) and both distributions at every percentile
    (for charts)."""
    known = ~np.isnan(workload.recorded_wait)
    recorded = workload.recorded_wait[known]
    simulated = (outcome.start - workload.submit)[known]
    if outcome.preempted_seconds is not None:
        simulated = simulated - outcome.preempted_seconds[known]
    if len(recorded) < 2:
        return {"jobs": len(recorded)}

    def ranks(x: np.ndarray) -> np.ndarray:
        # Tied values share their average rank (Spearman's convention).
        position = np.empty(len(x))
        position[np.argsort(x, kind="stable")] = np.arange(len(x))
        _, tie, count = np.unique(x, return_inverse=True, return_counts=True)
        return (np.bincount(tie, position) / count)[tie]

    def corr(a: np.ndarray, b: np.ndarray) -> float | None:
        if a.std() == 0 or b.std() == 0:
            return None
        return float(np.corrcoef(a, b)[0, 1])

    result: dict[str, Any] = {"jobs": len(recorded)}
    for label, x in (("recorded", recorded), ("simulated", simulated)):
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        result.update(
            {
                f"{label}_median_s": float(p50),
                f"{label}_p90_s": float(p90),
                f"{label}_p99_s": float(p99),
                f"{label}_mean_s": float(x.mean()),
                f"{label}_zero": float(np.mean(x < 1)),
            }
        )
    result.update(
        {
            "pearson": corr(recorded, simulated),
            "spearman": corr(ranks(recorded), ranks(simulated)),
            "ks": ks_statistic(recorded, simulated),
            "mean_abs_error_s": float(np.abs(recorded - simulated).mean()),
            "percentiles": {
                "recorded_s": np.percentile(recorded, np.arange(101)).tolist(),
                "simulated_s": np.percentile(simulated, np.arange(101)).tolist(),
            },
        }
    )
    return result


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: max |F_a(x) - F_b(x)| over x."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate((a, b))
    fa = np.searchsorted(a, points, side="right") / len(a)
    fb = np.searchsorted(b, points, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def pool_demand(workload: Workload, entitled: Sequence[float]) -> dict[str, dict[str, float]]:
    """Per pool, what the workload asks for (jobs, accelerator-hours, share of all the
    accelerator-hours asked) beside its entitlement: whether a pool can be short of its
    share at all depends on asking for more than it."""
    work = workload.accelerators.astype(np.float64) * workload.runtime
    per_pool = np.bincount(workload.pool, weights=work, minlength=len(workload.pools))
    jobs = np.bincount(workload.pool, minlength=len(workload.pools))
    total = float(per_pool.sum())
    return {
        name: {
            "jobs": int(jobs[p]),
            "accelerator_hours": float(per_pool[p] / HOUR),
            "demand_share": float(per_pool[p] / total) if total else 0.0,
            "entitled": float(entitled[p]),
        }
        for p, name in enumerate(workload.pools)
    }


def check_targets(policies: dict[str, Any], *, tolerance: float) -> list[dict[str, str]]:
    """The issue's targets for commonlab's policy in a report (`targets.check_targets`), as
    the report's JSON: none when commonlab was not run."""
    if OURS not in policies:
        return []
    figures = {name: PolicyFigures.of(f) for name, f in policies.items()}
    return [
        {"target": t.name, "verdict": t.verdict, "detail": t.detail}
        for t in targets.check_targets(figures, tolerance=tolerance)
    ]
