"""`commonlab simulate`: run scheduling policies on a trace-driven workload of a fleet under
a regulation, print them side by side and write the JSON report and charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from commonlab.cli.client import CliError
from commonlab.cli.render import console

__all__ = ["register"]


def simulate(
    fleet: Annotated[Path, typer.Option(help="fleet document (TOML or JSON, compute's schema)")],
    trace: Annotated[
        list[Path], typer.Option(help="trace file (Alibaba openb pod list, sacct -P, or CSV)")
    ],
    regulation: Annotated[
        Path, typer.Option(help="JSON: {regulation: ..., contribution_scale: ...}")
    ],
    out: Annotated[Path, typer.Option(help="folder for report.json and the charts")],
    policy: Annotated[
        list[str], typer.Option(help="fifo, multifactor, drf or commonlab (repeat to compare)")
    ] = ["fifo", "multifactor", "drf", "commonlab"],  # noqa: B006
    jobs: Annotated[
        int | None, typer.Option(help="stack copies of the traces up to this many jobs")
    ] = None,
    load: Annotated[
        float | None,
        typer.Option(help="scale arrival rates to this offered load of the fleet (e.g. 0.9)"),
    ] = None,
    scale_to: Annotated[
        int | None,
        typer.Option(
            help="scale arrival rates for this many accelerators (default: the fleet's; "
            "--load defaults to 0.95 with it)"
        ),
    ] = None,
    max_runtime_h: Annotated[
        float, typer.Option(help="cut longer jobs to this many hours (0: no cut)")
    ] = 24.0,
    motion: Annotated[
        int | None, typer.Option(help="simulate a motion's proposed regulation (not yet)")
    ] = None,
    fidelity: Annotated[
        bool, typer.Option(help="compare simulated with recorded queueing delays")
    ] = False,
) -> None:
    """Compare scheduling policies on a trace-driven workload of the facility."""
    from commonlab.compute.fleet_spec import load_fleet
    from commonlab.simulator.charts import write_charts
    from commonlab.simulator.facility import load_regulation
    from commonlab.simulator.run import prepare, run_policies
    from commonlab.simulator.traces import load_trace

    if motion is not None:
        raise CliError(
            "--motion comes with governance's motions; call "
            "commonlab.simulator.run.compare_regulations meanwhile"
        )
    fleet_spec = load_fleet(fleet)
    if scale_to is not None and scale_to < 1:
        raise CliError(f"--scale-to must be at least 1, not {scale_to}")
    if scale_to is not None and load is None:
        load = 0.95
    document = load_regulation(regulation)
    traces = [load_trace(path) for path in trace]
    scenario = prepare(
        fleet_spec,
        document,
        traces,
        jobs=jobs,
        load=load,
        max_runtime=max_runtime_h * 3600 if max_runtime_h > 0 else None,
        scale_to=scale_to,
    )
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        report = run_policies(scenario, policy, progress=progress, with_fidelity=fidelity)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    charts = write_charts(report, out)
    _print(report)
    console.print(
        f"wrote {out / 'report.json'} and {', '.join(str(c) for c in charts)}", highlight=False
    )


_ROWS = [
    ("utilisation", "utilisation", lambda f: f"{f['utilisation']:.1%}"),
    ("idle while waiting", "idle", lambda f: f"{f['idle_while_waiting_fraction']:.2%}"),
    ("mean JCT", "", lambda f: f"{f['mean_jct_h']:.2f} h"),
    ("p99 JCT", "", lambda f: f"{f['p99_jct_h']:.2f} h"),
    ("mean wait", "", lambda f: f"{f['mean_wait_h'] * 60:.1f} min"),
    ("p99 wait", "", lambda f: f"{f['p99_wait_h'] * 60:.1f} min"),
    ("makespan", "", lambda f: f"{f['makespan_days']:.2f} d"),
    ("max shortfall / hour", "", lambda f: f"{f['share_hour']['max_shortfall']:.1%}"),
    ("max shortfall / day", "", lambda f: f"{f['share_day']['max_shortfall']:.1%}"),
    ("max shortfall / week", "", lambda f: f"{f['share_week']['max_shortfall']:.1%}"),
    ("max |deviation| / day", "", lambda f: f"{f['share_day']['max_abs_deviation']:.1%}"),
    ("Jain (hourly)", "", lambda f: f"{f['share_hour']['jain']:.3f}"),
    ("backfilled jobs", "", lambda f: f"{f['backfilled_jobs']:,}"),
    ("preemptions", "", lambda f: str(f["preemptions"])),
    ("jobs/s simulated", "", lambda f: f"{f['jobs_per_s']:,.0f}"),
]


def _print(report: dict[str, Any]) -> None:
    workload = report["workload"]
    console.print(
        f"[bold]{workload['jobs']:,} jobs[/bold] on {report['fleet']['accelerators']:,} "
        f"accelerators over {workload['submission_hours']:.1f} h of submissions",
        highlight=False,
    )
    for line in workload["how"]:
        console.print(f"  · {line}", highlight=False, soft_wrap=True)
    for reason, count in sorted(workload["set_aside"].items()):
        console.print(f"  · set aside: {count:,} jobs {reason}", highlight=False)
    table = Table(title="Policies side by side", title_justify="left")
    table.add_column("")
    for name in report["policies"]:
        table.add_column(name, justify="right")
    for label, _, render in _ROWS:
        table.add_row(label, *(render(f) for f in report["policies"].values()))
    console.print(table)
    for name, figures in report["policies"].items():
        if "fidelity" in figures:
            fid = figures["fidelity"]
            if "recorded_median_s" in fid:
                console.print(
                    f"fidelity ({name}, {fid['jobs']:,} jobs): recorded wait median "
                    f"{fid['recorded_median_s']:.0f} s, p90 {fid['recorded_p90_s']:.0f} s; "
                    f"simulated median {fid['simulated_median_s']:.0f} s, p90 "
                    f"{fid['simulated_p90_s']:.0f} s; Spearman {fid['spearman']:.2f}",
                    highlight=False,
                )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
