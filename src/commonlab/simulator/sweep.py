"""The sweep: every policy on every regime of the scenario family, each regime's figures side
by side, and issue 19's targets for commonlab's policy checked per regime (met, not met, or
not tested, with the reason)."""

from __future__ import annotations

import statistics
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
    "across_seeds",
    "check_targets",
    "markdown",
    "regime_report",
    "seeds_cell",
    "spread_cells",
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
    seeds: Sequence[int] = (0,),
    largest_gang: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The named regimes (all when none is named) at full size or `quick` size, each drawn
    once per seed; `largest_gang` replaces each regime's bound on gang sizes (to see what
    gangs do). With several seeds, `across_seeds` says how far each figure moves between
    draws of the same regime, and in how many draws each target held."""
    if not policies:
        raise InvalidInput("name at least one --policy")
    unknown = [name for name in policies if name not in KNOWN_POLICIES]
    if unknown:
        raise InvalidInput(
            f"unknown policy {unknown[0]!r}: choose from {', '.join(KNOWN_POLICIES)}"
        )
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise InvalidInput("name one or more different seeds, each 0 or more")
    chosen = [scenarios.regime(n) for n in regimes] if regimes else list(scenarios.REGIMES)
    if quick:
        chosen = [r.quick() for r in chosen]
    if largest_gang is not None:
        chosen = [replace(r, largest_gang=largest_gang) for r in chosen]
    for regime in chosen:  # every mistake before the first run, not after
        scenarios.check_regime(regime)
    entries = [
        regime_report(r, policies, seed=seed, progress=progress) for r in chosen for seed in seeds
    ]
    return {
        "size": "quick" if quick else "full",
        "seeds": list(seeds),
        "largest_gang": largest_gang,
        "regulation": "five member states, entitled 30/25/20/15/10% "
        "(examples/regulation-five-states.json)",
        "regimes": entries,
        "across_seeds": across_seeds(entries) if len(seeds) > 1 else [],
    }


SPREAD_FIGURES = ("weekly_deviation", "utilisation", "mean_jct_h")


def across_seeds(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per regime (in the order given), per policy: the median, least and most of each
    figure over the seeds drawn (a weekly deviation only over the draws where a pool waited:
    elsewhere it measured nothing); per target: the seeds where it was met, not met and not
    tested. One draw of a regime can flatter a policy or wrong it: a change is only better
    where it holds across draws."""
    by_regime: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        by_regime.setdefault(entry["regime"], []).append(entry)
    summary = []
    for regime, draws in by_regime.items():
        policies: dict[str, dict[str, dict[str, float] | None]] = {}
        for name in draws[0]["policies"]:
            runs = [d["policies"][name] for d in draws]
            policies[name] = {figure: _spread(runs, figure) for figure in SPREAD_FIGURES}
        targets = []
        for i, target in enumerate(draws[0]["targets"]):
            seeds: dict[str, list[int]] = {MET: [], NOT_MET: [], NOT_TESTED: []}
            for d in draws:
                seeds[d["targets"][i]["verdict"]].append(d["seed"])
            targets.append({"name": target["name"], "seeds": seeds})
        summary.append(
            {
                "regime": regime,
                "seeds": [d["seed"] for d in draws],
                "policies": policies,
                "targets": targets,
            }
        )
    return summary


def _spread(runs: Sequence[Mapping[str, Any]], figure: str) -> dict[str, float] | None:
    # A weekly deviation measured nothing in a draw where no pool waited.
    values = [r[figure] for r in runs if figure != "weekly_deviation" or r["pool_weeks_waited"]]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def markdown(report: Mapping[str, Any]) -> str:
    """Tables for docs/simulator.md: with several seeds, each figure's median and range over
    the seeds and each target's count of seeds met, first; then, per draw, the figures per
    regime and policy and the targets per regime."""
    lines = _spread_tables(report["across_seeds"]) if report.get("across_seeds") else []
    lines += [
        "| regime | seed | policy | largest weekly deviation | utilisation | mean / p99 JCT "
        "| preemptions |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for entry in report["regimes"]:
        for name, f in entry["policies"].items():
            lines.append(
                f"| {entry['regime']} | {entry.get('seed', 0)} | {name} | {_deviation_cell(f)} | "
                f"{f['utilisation']:.2%} | {f['mean_jct_h']:.2f} / {f['p99_jct_h']:.1f} h | "
                f"{f['preemptions']:,} |"
            )
    lines += ["", "| regime | seed | " + " | ".join(_target_headers(report)) + " |"]
    lines.append("|---" * (2 + len(_target_headers(report))) + "|")
    for entry in report["regimes"]:
        cells = [f"{t['verdict']} ({t['detail']})" for t in entry["targets"]]
        lines.append(f"| {entry['regime']} | {entry.get('seed', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spread_tables(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| regime | policy | largest weekly deviation, median (range) | utilisation | mean JCT |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in summary:
        for name, spread in entry["policies"].items():
            cells = spread_cells(spread)
            lines.append(f"| {entry['regime']} | {name} | " + " | ".join(cells) + " |")
    names = [t["name"] for t in summary[0]["targets"]] if summary else []
    lines += ["", "| regime | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for entry in summary:
        cells = [seeds_cell(t["seeds"], len(entry["seeds"])) for t in entry["targets"]]
        lines.append(f"| {entry['regime']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def spread_cells(spread: Mapping[str, Mapping[str, float] | None]) -> tuple[str, str, str]:
    """One policy's weekly deviation, utilisation and mean JCT over the draws, as cells."""
    deviation, utilisation, jct = (spread[f] for f in SPREAD_FIGURES)
    return (
        spread_cell(deviation, " pt", scale=100),
        spread_cell(utilisation, "%", scale=100),
        spread_cell(jct, " h"),
    )


def spread_cell(spread: Mapping[str, float] | None, unit: str, *, scale: float = 1) -> str:
    """ "1.19 pt (0.75 to 1.40)": the median and the range over the seeds."""
    if spread is None:
        return "- (no pool waited)"
    low, mid, high = (f"{scale * spread[k]:.2f}" for k in ("min", "median", "max"))
    return f"{mid}{unit} ({low} to {high})"


def seeds_cell(seeds: Mapping[str, Sequence[int]], drawn: int) -> str:
    """ "met in 3 of 5 (NOT met: seeds 1, 4)": how many draws held the target, and which did
    not."""
    cell = f"met in {len(seeds[MET])} of {drawn}"
    for verdict in (NOT_MET, NOT_TESTED):
        if seeds[verdict]:
            listed = ", ".join(str(s) for s in seeds[verdict])
            cell += f" ({verdict}: seed{'s' if len(seeds[verdict]) > 1 else ''} {listed})"
    return cell


def _deviation_cell(figures: Mapping[str, Any]) -> str:
    if not figures["pool_weeks_waited"]:
        return "- (no pool waited)"
    return f"{100 * figures['weekly_deviation']:.2f} pt"


def _target_headers(report: Mapping[str, Any]) -> list[str]:
    entries = report["regimes"]
    return [t["name"] for t in entries[0]["targets"]] if entries else []
