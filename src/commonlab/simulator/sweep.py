"""The sweep: every policy on every regime of the scenario family, each regime's figures side
by side, and issue 19's targets for commonlab's policy checked per regime (met, not met, or
not tested, with the reason)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from commonlab.errors import InvalidInput
from commonlab.simulator import scenarios
from commonlab.simulator.inputs import entitlements
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.policies import POLICIES as KNOWN_POLICIES
from commonlab.simulator.run import prepare, run_policies
from commonlab.simulator.scenarios import Regime
from commonlab.simulator.targets import (
    MET,
    NOT_MET,
    NOT_TESTED,
    OTHERS,
    OURS,
    PolicyFigures,
    Target,
    check_targets,
)

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

POLICIES = (*OTHERS, OURS)

Progress = Callable[[str, str, int, int], None]  # regime, policy, jobs done, jobs


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
