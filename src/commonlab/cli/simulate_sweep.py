"""`commonlab simulate-sweep`: every policy on every regime of the scenario family (or the
ones named), the figures side by side and issue 19's targets per regime."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from commonlab.cli.render import console

__all__ = ["register"]

err = Console(stderr=True)


def simulate_sweep(
    regime: Annotated[
        list[str] | None,
        typer.Option(help="a regime of the scenario family (repeat; default all: see --list)"),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(help="fifo, multifactor, drf or commonlab (repeat; default all four)"),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(help="a sixteenth of each fleet over 1.5 weeks: seconds, for tests and CI"),
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="the generator's seed")] = 0,
    seeds: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            help="draw each regime this many times, seeds --seed, --seed + 1, ...: each "
            "figure's median and range, and in how many draws each target held",
        ),
    ] = 1,
    largest_gang: Annotated[
        int | None,
        typer.Option(min=1, help="replace each regime's largest gang (to see what gangs do)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="folder for sweep.json and sweep.md (the docs' tables)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    list_regimes: Annotated[bool, typer.Option("--list", help="list the regimes and exit")] = False,
) -> None:
    """Run the scheduling policies across the regimes of the scenario family (light and
    overloaded, weeks-long jobs, large gangs, bursty and returning states) under five member
    states entitled to 30/25/20/15/10%, and check issue 19's targets for commonlab's policy
    per regime."""
    from commonlab.simulator import scenarios
    from commonlab.simulator.sweep import POLICIES, markdown, sweep

    if list_regimes:
        _print_regimes(scenarios.REGIMES)
        return
    with _progress() as progress:
        report = sweep(
            regime or (),
            policy or POLICIES,
            quick=quick,
            seeds=range(seed, seed + seeds),
            largest_gang=largest_gang,
            progress=progress,
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps(report, indent=1))
        (out / "sweep.md").write_text(markdown(report))
    if as_json:
        console.print_json(json.dumps(report))
        return
    _print(report)
    if out is not None:
        console.print(f"wrote {out / 'sweep.json'} and {out / 'sweep.md'}", highlight=False)


def _print_regimes(regimes: Any) -> None:
    table = Table(title="Regimes of the scenario family", title_justify="left")
    for column in ("regime", "accelerators", "load", "weeks", "largest gang", "what it is"):
        table.add_column(column, overflow="fold")
    for r in regimes:
        table.add_row(
            r.name,
            f"{r.accelerators:,}",
            f"{r.load:g}",
            f"{r.weeks:g}",
            f"{r.gang_limit:,}",
            r.description,
        )
    console.print(table)


@contextmanager
def _progress() -> Iterator[Callable[[str, str, int, int], None]]:
    """A bar per (regime, policy) on stderr, so that --json keeps stdout to itself."""
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(regime: str, policy: str, done: int, total: int) -> None:
            key = f"{regime} {policy}"
            if key not in tasks:
                tasks[key] = bar.add_task(key, total=total)
            bar.update(tasks[key], completed=done)

        yield progress


def _print(report: dict[str, Any]) -> None:
    if report["across_seeds"]:
        _print_spread(report)
        return
    figures = Table(
        title=f"Sweep ({report['size']} size, {_seeds(report['seeds'])}"
        + (f", gangs up to {report['largest_gang']}" if report["largest_gang"] else "")
        + f"): {report['regulation']}",
        title_justify="left",
    )
    columns = ("regime", "jobs", "policy", "weekly dev.", "utilisation", "mean JCT", "p99")
    for column in (*columns, "preempt."):
        figures.add_column(column, justify="left" if column in ("regime", "policy") else "right")
    for entry in report["regimes"]:
        for i, (name, f) in enumerate(entry["policies"].items()):
            figures.add_row(
                entry["regime"] if i == 0 else "",
                f"{entry['jobs']:,}" if i == 0 else "",
                name,
                f"{100 * f['weekly_deviation']:.2f} pt" if f["pool_weeks_waited"] else "-",
                f"{f['utilisation']:.2%}",
                f"{f['mean_jct_h']:.2f} h",
                f"{f['p99_jct_h']:.1f} h",
                f"{f['preemptions']:,}",
            )
        figures.add_section()
    console.print(figures)
    for entry in report["regimes"]:
        for warning in entry["warnings"]:
            console.print(f"{entry['regime']}: {warning}", highlight=False)
    if len(report["regimes"]) == 1:
        _print_pools(report["regimes"][0])
    targets = Table(title="commonlab's targets per regime", title_justify="left")
    for column in ("regime", "target", "verdict", "figures"):
        targets.add_column(column, overflow="fold")
    for entry in report["regimes"]:
        for i, t in enumerate(entry["targets"]):
            style = {"met": "green", "NOT met": "red"}.get(t["verdict"], "yellow")
            targets.add_row(
                entry["regime"] if i == 0 else "",
                t["name"],
                f"[{style}]{t['verdict']}[/{style}]",
                t["detail"],
            )
        targets.add_section()
    console.print(targets)


def _seeds(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]} to {seeds[-1]}"


def _print_spread(report: dict[str, Any]) -> None:
    """Several draws of each regime: each figure's median and range, and in how many draws
    each target held (every draw's figures are in --json and --out)."""
    from commonlab.simulator.sweep import seeds_cell, spread_cells  # loaded by the command

    figures = Table(
        title=f"Sweep ({report['size']} size, {_seeds(report['seeds'])}"
        + (f", gangs up to {report['largest_gang']}" if report["largest_gang"] else "")
        + f"): median (range) over the draws; {report['regulation']}",
        title_justify="left",
    )
    for column in ("regime", "policy", "weekly dev.", "utilisation", "mean JCT"):
        figures.add_column(column, justify="left" if column in ("regime", "policy") else "right")
    for entry in report["across_seeds"]:
        for i, (name, spread) in enumerate(entry["policies"].items()):
            figures.add_row(entry["regime"] if i == 0 else "", name, *spread_cells(spread))
        figures.add_section()
    console.print(figures)
    targets = Table(title="commonlab's targets per regime, over the draws", title_justify="left")
    for column in ("regime", "target", "draws"):
        targets.add_column(column, overflow="fold")
    for entry in report["across_seeds"]:
        for i, t in enumerate(entry["targets"]):
            drawn = len(entry["seeds"])
            met = len(t["seeds"]["met"])
            style = "green" if met == drawn else "red" if met == 0 else "yellow"
            targets.add_row(
                entry["regime"] if i == 0 else "",
                t["name"],
                f"[{style}]{seeds_cell(t['seeds'], drawn)}[/{style}]",
            )
        targets.add_section()
    console.print(targets)


def _print_pools(entry: dict[str, Any]) -> None:
    """One regime's largest weekly deviation per pool and policy: which state is short."""
    per_policy = entry["per_pool_weekly"]
    table = Table(
        title=f"{entry['regime']}: largest weekly deviation from the fair share per pool, points",
        title_justify="left",
    )
    table.add_column("pool")
    for name in per_policy:
        table.add_column(name, justify="right")
    for pool in next(iter(per_policy.values()), {}):
        table.add_row(pool, *(f"{100 * rows[pool]:+.2f}" for rows in per_policy.values()))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("simulate-sweep")(simulate_sweep)
