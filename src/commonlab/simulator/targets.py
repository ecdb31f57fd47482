"""Issue 19's outcome targets for commonlab's policy, judged against the other policies of
the same run: each target met, NOT met or not tested, with the reason. One rule for the
study (`commonlab simulate`, run.py's report) and the sweep (sweep.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "JCT_SLACK",
    "MET",
    "NOT_MET",
    "NOT_TESTED",
    "OTHERS",
    "OURS",
    "UTILISATION_SLACK",
    "PolicyFigures",
    "Target",
    "check_targets",
]

OURS = "commonlab"
OTHERS = ("fifo", "multifactor", "drf")
MET, NOT_MET, NOT_TESTED = "met", "NOT met", "not tested"
# Utilisation within this many points of the best other policy; mean JCT within this
# fraction of multifactor's.
UTILISATION_SLACK = 0.005
JCT_SLACK = 0.05
# Deviations are compared as printed, to a hundredth of a point: "never worse" is not
# decided by a difference no table shows.
SAME_DEVIATION = 0.00005


@dataclass(frozen=True)
class PolicyFigures:
    """What the sweep reads of one policy's run. Shares and utilisation are fractions."""

    weekly_deviation: float  # largest |got - fair| of any pool in any week it waited
    pool_weeks_waited: int  # (pool, week) pairs counted: 0 means the share was never tested
    utilisation: float
    mean_jct_h: float
    p99_jct_h: float
    mean_wait_h: float
    seconds: float = 0.0
    preemptions: int = 0

    @classmethod
    def of(cls, figures: Mapping[str, Any]) -> PolicyFigures:
        """From one policy's figures in `run_policies`' report."""
        week = figures["share_week"]
        return cls(
            weekly_deviation=week["max_abs_deviation"],
            pool_weeks_waited=sum(p["windows_waiting"] for p in week["pools"].values()),
            utilisation=figures["utilisation"],
            mean_jct_h=figures["mean_jct_h"],
            p99_jct_h=figures["p99_jct_h"],
            mean_wait_h=figures["mean_wait_h"],
            seconds=figures.get("seconds", 0.0),
            preemptions=figures.get("preemptions", 0),
        )


@dataclass(frozen=True)
class Target:
    name: str
    verdict: str  # MET, NOT_MET or NOT_TESTED
    detail: str


def check_targets(figures: Mapping[str, PolicyFigures], *, tolerance: float) -> list[Target]:
    """Issue 19's targets for commonlab's policy on one regime, against the other policies
    run on it. A target is "not tested" when the run cannot show it: no pool waited an hour
    in any week under commonlab (no share was measured), no job waited under any policy
    (every policy schedules such a workload alike), the policy it is measured against was
    not run, or, for the ±tolerance target, no policy holds it at all."""
    ours = figures.get(OURS)
    if ours is None:
        return [Target("all targets", NOT_TESTED, f"{OURS} was not run")]
    others = {name: figures[name] for name in OTHERS if name in figures}
    jobs_waited = any(f.mean_wait_h > 0 for f in figures.values())
    return [
        _within_tolerance(figures, tolerance),
        _no_worse(ours, others),
        _utilisation(ours, others, jobs_waited),
        _jct(ours, figures, jobs_waited),
    ]


_NEVER_WAITED = "no pool waited an hour in any week"


def _within_tolerance(figures: Mapping[str, PolicyFigures], tolerance: float) -> Target:
    points = f"±{100 * tolerance:g} points"
    name = f"weekly share within {points} where any policy holds it"
    ours = figures[OURS]
    if not ours.pool_weeks_waited:
        return Target(name, NOT_TESTED, _NEVER_WAITED)
    holding = sorted(n for n, f in figures.items() if f.weekly_deviation <= tolerance)
    if not holding:
        best_dev, best = min((f.weekly_deviation, n) for n, f in figures.items())
        return Target(
            name, NOT_TESTED, f"no policy holds {points}; best {best} {100 * best_dev:.2f}"
        )
    verdict = MET if ours.weekly_deviation <= tolerance else NOT_MET
    return Target(name, verdict, f"{100 * ours.weekly_deviation:.2f}; held by {', '.join(holding)}")


def _no_worse(ours: PolicyFigures, others: Mapping[str, PolicyFigures]) -> Target:
    name = "weekly deviation no worse than the best of " + "/".join(OTHERS)
    if not ours.pool_weeks_waited:
        return Target(name, NOT_TESTED, _NEVER_WAITED)
    if not others:
        return Target(name, NOT_TESTED, "no other policy was run")
    best_dev, best = min((f.weekly_deviation, n) for n, f in others.items())
    verdict = MET if ours.weekly_deviation <= best_dev + SAME_DEVIATION else NOT_MET
    return Target(
        name, verdict, f"{100 * ours.weekly_deviation:.2f} vs {best} {100 * best_dev:.2f}"
    )


def _utilisation(
    ours: PolicyFigures, others: Mapping[str, PolicyFigures], jobs_waited: bool
) -> Target:
    name = f"utilisation within {100 * UTILISATION_SLACK:g} points of the best"
    if not others:
        return Target(name, NOT_TESTED, "no other policy was run")
    if not jobs_waited:
        return Target(name, NOT_TESTED, "no job waited under any policy")
    top, best = max((f.utilisation, n) for n, f in others.items())
    verdict = MET if ours.utilisation >= top - UTILISATION_SLACK else NOT_MET
    return Target(name, verdict, f"{ours.utilisation:.2%} vs {best} {top:.2%}")


def _jct(ours: PolicyFigures, figures: Mapping[str, PolicyFigures], jobs_waited: bool) -> Target:
    name = f"mean JCT within {JCT_SLACK:.0%} of multifactor's"
    baseline = figures.get("multifactor")
    if baseline is None:
        return Target(name, NOT_TESTED, "multifactor was not run")
    if not jobs_waited:
        return Target(name, NOT_TESTED, "no job waited under any policy")
    verdict = MET if ours.mean_jct_h <= baseline.mean_jct_h * (1 + JCT_SLACK) else NOT_MET
    return Target(name, verdict, f"{ours.mean_jct_h:.2f} h vs {baseline.mean_jct_h:.2f} h")
