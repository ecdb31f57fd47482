"""`commonlab simulate`: run scheduling policies on a trace-driven workload of a fleet under
a regulation, print them side by side and write the JSON report and charts."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from commonlab.cli.client import CliError
from commonlab.cli.render import console
from commonlab.cli.simulate_motion import simulate_motion

__all__ = ["register"]


def simulate(
    fleet: Annotated[
        Path | None, typer.Option(help="fleet document (TOML or JSON, compute's schema)")
    ] = None,
    trace: Annotated[
        list[Path] | None,
        typer.Option(help="trace file (Alibaba openb pod list, sacct -P, or CSV)"),
    ] = None,
    regulation: Annotated[
        Path | None, typer.Option(help="JSON: {regulation: ..., contribution_scale: ...}")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="folder for report.json and the charts")] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="fifo, multifactor, drf or commonlab (repeat to compare; default all four, "
            "or commonlab with --motion)"
        ),
    ] = None,
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
        float,
        typer.Option(
            help="cut longer jobs to this many hours, as a maximum job time would (0: no cut, "
            "every job whole); the report says how much work the cut removed"
        ),
    ] = 24.0,
    size_scale: Annotated[
        int,
        typer.Option(
            help="multiply every job's accelerators by this factor (8: each GPU of the trace "
            "becomes an 8-accelerator node)",
        ),
    ] = 1,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="TENANT=POOL: the pool of a trace tenant (a name, a glob like team-*, "
            "re:REGEX, or * for every other tenant; POOL a pool of the regulation or a "
            "member state's code); repeat. Without any map, pools are dealt round-robin",
        ),
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option(help="CSV with the header tenant,pool and one line per --map"),
    ] = None,
    trace_pool: Annotated[
        list[str] | None,
        typer.Option(help="FILE=POOL: every job of this trace file (path, name or stem) to POOL"),
    ] = None,
    motion: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="an adopt_regulation motion: run its regulation and the one in force on the "
            "workload, and attach the comparison to the motion",
        ),
    ] = None,
    workload: Annotated[
        str,
        typer.Option(
            help="with --motion: auto (the facility's own jobs of the last 92 days on its "
            "fleet, else the --trace given), facility, or trace",
        ),
    ] = "auto",
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="with --motion: the first day of the facility's jobs to replay (UTC; default "
            "92 days before --until)",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="with --motion: the day after the last one replayed (UTC; default tomorrow)",
        ),
    ] = None,
    fidelity: Annotated[
        bool, typer.Option(help="compare simulated with recorded queueing delays")
    ] = False,
    url: Annotated[
        str | None, typer.Option("--url", help="facility URL, with --motion [env: COMMONLAB_URL]")
    ] = None,
) -> None:
    """Compare scheduling policies on a trace-driven workload of the facility, or (--motion)
    a motion's proposed regulation with the one in force."""
    from commonlab.simulator.inputs import load_fleet

    _check_options(
        jobs=jobs, load=load, scale_to=scale_to, max_runtime_h=max_runtime_h, size_scale=size_scale
    )
    if scale_to is not None and load is None:
        load = 0.95
    if motion is None and (fleet is None or not trace):
        raise CliError("name the workload: --fleet FLEET and at least one --trace TRACE")
    max_runtime = max_runtime_h * 3600 if max_runtime_h > 0 else None
    pool_map = _pool_map(map_ or [], map_file, trace_pool or [])
    window = {"start": since, "end": until}
    if motion is None and any(window.values()):
        raise CliError("--since and --until choose the facility's jobs a --motion replays")
    if motion is not None:
        if workload == "trace" and any(window.values()):
            raise CliError(
                "--since and --until choose the facility's own jobs: not with --workload trace"
            )
        if regulation is not None:
            raise CliError("--motion reads both regulations from the facility: drop --regulation")
        names = policy or ["commonlab"]
        if len(names) != 1:
            raise CliError("--motion compares two regulations under one --policy: name one")
        if pool_map:
            raise CliError(
                "--motion deals the workload to the pools both regulations share: drop --map, "
                "--map-file and --trace-pool"
            )
        simulate_motion(
            motion,
            fleet=None if fleet is None else load_fleet(fleet),
            traces=trace or [],
            workload=workload,
            window={k: v.date() for k, v in window.items() if v is not None},
            policy=names[0],
            url=url,
            out=out,
            jobs=jobs,
            load=load,
            max_runtime=max_runtime,
            scale_to=scale_to,
            size_scale=size_scale,
        )
        return
    if regulation is None or out is None:
        raise CliError("name the --regulation to simulate and the --out folder for the report")
    _simulate_policies(
        load_fleet(fleet),
        regulation,
        _load_traces(trace),
        out=out,
        pool_map=pool_map,
        policies=policy or ["fifo", "multifactor", "drf", "commonlab"],
        jobs=jobs,
        load=load,
        max_runtime=max_runtime,
        scale_to=scale_to,
        size_scale=size_scale,
        fidelity=fidelity,
    )


def _simulate_policies(
    fleet_spec: Any,
    regulation: Path,
    traces: list[Any],
    *,
    out: Path,
    policies: list[str],
    jobs: int | None,
    load: float | None,
    max_runtime: float | None,
    scale_to: int | None,
    size_scale: int,
    fidelity: bool,
    pool_map: Any,
) -> None:
    from commonlab.simulator.charts import write_charts
    from commonlab.simulator.inputs import load_regulation
    from commonlab.simulator.run import prepare, run_policies

    document = load_regulation(regulation)
    scenario = prepare(
        fleet_spec,
        document,
        traces,
        jobs=jobs,
        load=load,
        max_runtime=max_runtime,
        scale_to=scale_to,
        size_scale=size_scale,
        pool_map=pool_map,
    )
    with _progress() as progress:
        report = run_policies(scenario, policies, progress=progress, with_fidelity=fidelity)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    charts = write_charts(report, out)
    _print(report)
    console.print(
        f"wrote {out / 'report.json'} and {', '.join(str(c) for c in charts)}", highlight=False
    )


def _check_options(
    *,
    jobs: int | None,
    load: float | None,
    scale_to: int | None,
    max_runtime_h: float,
    size_scale: int,
) -> None:
    """Each option out of range is a one-line error before anything is read."""
    if not math.isfinite(max_runtime_h) or max_runtime_h < 0:
        raise CliError(
            f"--max-runtime-h must be a number of hours, 0 or more (0: no cut), not {max_runtime_h}"
        )
    if load is not None and not (0 < load <= _MAX_LOAD):
        raise CliError(f"--load must be above 0 and at most {_MAX_LOAD:g}, not {load}")
    if jobs is not None and jobs < 1:
        raise CliError(f"--jobs must be at least 1, not {jobs}")
    if scale_to is not None and scale_to < 1:
        raise CliError(f"--scale-to must be at least 1, not {scale_to}")
    if size_scale < 1:
        raise CliError(f"--size-scale must be at least 1, not {size_scale}")


# Ten times the capacity is already a queue that never drains; more is a typo.
_MAX_LOAD = 10.0


def _pool_map(pairs: list[str], map_file: Path | None, trace_pools: list[str]) -> Any:
    """The operator's map from --map, --map-file and --trace-pool (None when none is given)."""
    from commonlab.simulator.mapping import PoolMap, parse_pair, read_map_file

    rules = tuple(parse_pair(p, option="--map") for p in pairs)
    if map_file is not None:
        rules += read_map_file(map_file)
    files = tuple(parse_pair(p, option="--trace-pool") for p in trace_pools)
    return PoolMap(rules, files) if rules or files else None


def _load_traces(paths: list[Path]) -> list[Any]:
    """Each trace, with a progress bar of the bytes read where the loader reports them."""
    from commonlab.simulator.traces import load_trace

    if "progress" not in inspect.signature(load_trace).parameters:
        return [load_trace(path) for path in paths]
    traces = []
    with _progress(DownloadColumn()) as progress:  # bytes read of the file's size
        for path in paths:

            def read(done: int, total: int, name: str = path.name) -> None:
                progress(f"reading {name}", done, total)

            traces.append(load_trace(path, progress=read))
    return traces


@contextmanager
def _progress(
    count: ProgressColumn | None = None,
) -> Iterator[Callable[[str, int, int], None]]:
    """A transient bar per name: progress(name, done, total); `count` shows done of total
    (jobs by default)."""
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        count or MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        yield progress


_ROWS = [
    ("utilisation (completed work)", lambda f: f"{f['utilisation']:.1%}"),
    ("utilisation (busy, incl. cut runs)", lambda f: f"{f['utilisation_busy']:.1%}"),
    ("idle while jobs wait", lambda f: f"{f['idle_while_waiting_fraction']:.2%}"),
    ("mean JCT", lambda f: f"{f['mean_jct_h']:.2f} h"),
    ("p99 JCT", lambda f: f"{f['p99_jct_h']:.2f} h"),
    ("mean wait", lambda f: _duration(f["mean_wait_h"])),
    ("p99 wait", lambda f: _duration(f["p99_wait_h"])),
    ("makespan", lambda f: f"{f['makespan_days']:.2f} d"),
    ("max |dev| from fair / week", lambda f: _points(f["share_week"]["max_abs_deviation"])),
    ("max |dev| from fair / day", lambda f: _points(f["share_day"]["max_abs_deviation"])),
    ("max |dev| from fair / hour", lambda f: _points(f["share_hour"]["max_abs_deviation"])),
    ("max |share - entitled| / week", lambda f: _points(f["share_week"]["max_raw_deviation"])),
    ("Jain (hourly, got/fair)", lambda f: f"{f['share_hour']['jain']:.3f}"),
    ("backfilled jobs", lambda f: f"{f['backfilled_jobs']:,}"),
    ("preemptions (jobs)", lambda f: f"{f['preemptions']:,} ({f['preempted_jobs']:,})"),
    ("accelerator-hours lost", lambda f: f"{f['lost_accelerator_hours']:,.0f}"),
    ("jobs/s simulated", lambda f: f"{f['jobs_per_s']:,.0f}"),
]


def _points(x: float) -> str:
    return f"{100 * x:.2f} pt"


def _duration(hours: float) -> str:
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:.2f} h"


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
        console.print(f"  · set aside: {count:,} jobs: {reason}", highlight=False)
    for line in workload["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)
    policies = report["policies"]
    _print_pools(report)
    table = Table(title="Policies side by side", title_justify="left")
    table.add_column("")
    for name in policies:
        table.add_column(name, justify="right")
    for label, render in _ROWS:
        table.add_row(label, *(render(f) for f in policies.values()))
    console.print(table)
    weekly = Table(
        title="Largest weekly deviation from the fair share while the pool waited, points "
        "(weeks counted)",
        title_justify="left",
    )
    weekly.add_column("pool")
    weekly.add_column("entitled", justify="right")
    for name in policies:
        weekly.add_column(name, justify="right")
    for pool, share in report["entitlements"].items():
        cells = []
        for figures in policies.values():
            row = figures["share_week"]["pools"].get(pool)
            cells.append(
                f"{100 * row['worst_deviation']:+.2f} ({row['windows_waiting']})"
                if row and row["windows_waiting"]
                else "not tested"
            )
        weekly.add_row(pool, f"{share:.1%}", *cells)
    console.print(weekly)
    _print_targets(report)
    for name, figures in policies.items():
        fid = figures.get("fidelity", {})
        if "recorded_median_s" in fid:
            _print_fidelity(name, fid)


def _print_pools(report: dict[str, Any]) -> None:
    """Each pool's demand beside its entitlement, and its waits under every policy."""
    policies = report["policies"]
    table = Table(
        title="Demand against entitlement, and waits (mean / p99) per pool", title_justify="left"
    )
    longest = max((len(pool) for pool in report["workload"]["pools"]), default=4)
    table.add_column("pool", no_wrap=True, min_width=longest)  # a pool's name is never cut
    for column in ("entitled", "asked, acc-h", "share of demand", "jobs"):
        table.add_column(column, justify="right")
    for name in policies:
        table.add_column(f"{name} wait", justify="right", no_wrap=True)
    for pool, demand in report["workload"]["pools"].items():
        waits = []
        for figures in policies.values():
            row = figures["per_pool"][pool]
            waits.append(
                f"{_duration(row['mean_wait_h'])} / {_duration(row['p99_wait_h'])}"
                if row["jobs"]
                else "-"
            )
        table.add_row(
            pool,
            f"{demand['entitled']:.1%}",
            f"{demand['accelerator_hours']:,.0f}",
            f"{demand['demand_share']:.1%}",
            f"{demand['jobs']:,}",
            *waits,
        )
    console.print(table)


def _print_targets(report: dict[str, Any]) -> None:
    """The issue's outcome targets for commonlab's policy, when the run has what they need."""
    for check in report["targets"]:
        console.print(
            f"commonlab target: {check['target']}: {check['verdict']} ({check['detail']})",
            highlight=False,
        )


def _print_fidelity(name: str, fid: dict[str, Any]) -> None:
    table = Table(
        title=f"Fidelity ({name}, {fid['jobs']:,} jobs): queueing delay, s",
        title_justify="left",
    )
    for column in ("", "recorded", "simulated"):
        table.add_column(column, justify="right" if column else "left")
    for label, key in (("median", "median"), ("p90", "p90"), ("p99", "p99"), ("mean", "mean")):
        table.add_row(
            label, f"{fid[f'recorded_{key}_s']:,.0f}", f"{fid[f'simulated_{key}_s']:,.0f}"
        )
    table.add_row("under 1 s", f"{fid['recorded_zero']:.1%}", f"{fid['simulated_zero']:.1%}")
    console.print(table)
    spearman = (
        "undefined (one side constant)" if fid["spearman"] is None else f"{fid['spearman']:.2f}"
    )
    console.print(
        f"fidelity ({name}): Spearman {spearman}; Kolmogorov-Smirnov {fid['ks']:.2f}; "
        f"mean |recorded - simulated| {fid['mean_abs_error_s']:,.0f} s",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
