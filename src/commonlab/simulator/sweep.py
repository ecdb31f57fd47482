"""The sweep: every policy on every regime of the scenario family, each regime's figures side
by side, and issue 19's targets for commonlab's policy checked per regime (met, not met, or
not tested, with the reason)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from commonlab.errors import InvalidInput
from commonlab.simulator import scenarios
from commonlab.simulator.inputs import entitlements
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.metrics import (
    JCT_SLACK,
    MET,
    NOT_MET,
    NOT_TESTED,
    OTHERS,
    UTILISATION_SLACK,
)
from commonlab.simulator.policies import POLICIES as KNOWN_POLICIES
from commonlab.simulator.run import prepare, run_policies
from commonlab.simulator.scenarios import Regime

__all__ = [
    "MET",
    "NOT_MET",
    "NOT_TESTED",
    "OTHERS",
    "OURS",
    "POLICIES",
    "PolicyFigures",
    "Target",
    "check_targets",
    "markdown",
    "regime_report",
    "sweep",
]

OURS = "commonlab"
POLICIES = (*OTHERS, OURS)
# Deviations are compared as printed, to a hundredth of a point: "never worse" is not
# decided by a difference no table shows.
SAME_DEVIATION = 0.00005

Progress = Callable[[str, str, int, int], None]  # regime, policy, jobs done, jobs


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


def regime_report(
    regime: Regime,
    policies: Sequence[str] = POLICIES,
    *,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One regime: its generated workload on its fleet under the five states' regulation,
    every policy on it, the figures and the targets."""
    trace = scenarios.generate(regime, seed=seed)
    document = scenarios.five_states_regulation()
    # The trace is already at the regime's load and its tenants are named after their
    # states: no arrival scaling, no runtime cut, an explicit map.
    scenario = prepare(
        scenarios.fleet_for(regime),
        document,
        [trace],
        pool_map=PoolMap.of(scenarios.tenant_pools(regime)),
    )

    def tick(policy: str, done: int, total: int) -> None:
        if progress:
            progress(regime.name, policy, done, total)

    report = run_policies(scenario, policies, progress=tick)
    figures = {name: PolicyFigures.of(f) for name, f in report["policies"].items()}
    return {
        "regime": regime.name,
        "description": regime.description,
        "seed": seed,
        "accelerators": regime.accelerators,
        "load": regime.load,
        "weeks": regime.weeks,
        "jobs": len(scenario.workload),
        "largest_gang": regime.gang_limit,
        "behaviours": scenarios.behaviours(regime),
        "notes": trace.notes,
        "warnings": report["workload"].get("warnings", []),
        "policies": {name: asdict(f) for name, f in figures.items()},
        "per_pool_weekly": {
            name: {pool: row["worst_deviation"] for pool, row in f["share_week"]["pools"].items()}
            for name, f in report["policies"].items()
        },
        "targets": [
            asdict(t) for t in check_targets(figures, tolerance=entitlements(document).tolerance)
        ],
    }


def sweep(
    regimes: Sequence[str] = (),
    policies: Sequence[str] = POLICIES,
    *,
    quick: bool = False,
    seed: int = 0,
    largest_gang: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The named regimes (all when none is named) at full size or `quick` size;
    `largest_gang` replaces each regime's bound on gang sizes (to see what gangs do)."""
    if not policies:
        raise InvalidInput("name at least one --policy")
    unknown = [name for name in policies if name not in KNOWN_POLICIES]
    if unknown:
        raise InvalidInput(
            f"unknown policy {unknown[0]!r}: choose from {', '.join(KNOWN_POLICIES)}"
        )
    chosen = [scenarios.regime(n) for n in regimes] if regimes else list(scenarios.REGIMES)
    if quick:
        chosen = [r.quick() for r in chosen]
    if largest_gang is not None:
        chosen = [replace(r, largest_gang=largest_gang) for r in chosen]
    for regime in chosen:  # every mistake before the first run, not after
        scenarios.check_regime(regime)
    return {
        "size": "quick" if quick else "full",
        "seed": seed,
        "largest_gang": largest_gang,
        "regulation": "five member states, entitled 30/25/20/15/10% "
        "(examples/regulation-five-states.json)",
        "regimes": [regime_report(r, policies, seed=seed, progress=progress) for r in chosen],
    }


def markdown(report: Mapping[str, Any]) -> str:
    """Two tables for docs/simulator.md: the figures per regime and policy, and the targets
    per regime."""
    lines = [
        "| regime | policy | largest weekly deviation | utilisation | mean / p99 JCT "
        "| preemptions |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for entry in report["regimes"]:
        for name, f in entry["policies"].items():
            lines.append(
                f"| {entry['regime']} | {name} | {_deviation_cell(f)} | "
                f"{f['utilisation']:.2%} | {f['mean_jct_h']:.2f} / {f['p99_jct_h']:.1f} h | "
                f"{f['preemptions']:,} |"
            )
    lines += ["", "| regime | " + " | ".join(_target_headers(report)) + " |"]
    lines.append("|---" * (1 + len(_target_headers(report))) + "|")
    for entry in report["regimes"]:
        cells = [f"{t['verdict']} ({t['detail']})" for t in entry["targets"]]
        lines.append(f"| {entry['regime']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _deviation_cell(figures: Mapping[str, Any]) -> str:
    if not figures["pool_weeks_waited"]:
        return "- (no pool waited)"
    return f"{100 * figures['weekly_deviation']:.2f} pt"


def _target_headers(report: Mapping[str, Any]) -> list[str]:
    entries = report["regimes"]
    return [t["name"] for t in entries[0]["targets"]] if entries else []
