"""`commonlab simulate --motion N`: the council's what-if. Read the motion and the regulation
in force when its vote opened from the facility, run both on one workload — by default the
facility's own jobs of the last quarter on its fleet as it is — print them side by side and
attach the summary to the motion."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console
from commonlab.errors import from_validation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from commonlab.simulator.whatif import OwnJobs, WorkloadChoice

__all__ = ["simulate_motion"]


WORKLOADS = ("auto", "facility", "trace")


def simulate_motion(
    motion_id: int,
    *,
    fleet: Any,
    traces: list[Path],
    workload: str = "auto",
    window: dict[str, date] | None = None,
    policy: str,
    url: str | None,
    out: Path | None,
    jobs: int | None,
    load: float | None,
    max_runtime: float | None,
    scale_to: int | None,
    size_scale: int,
) -> None:
    """Fetch the motion, the regulation and the scale in force when its vote opened, run
    both regulations on one workload and attach the comparison to the motion.

    `workload`: `auto` replays the facility's own jobs of the last 92 days, or of `window`
    (`start`, `end`: the export's days) (`fleet` None: on the facility's fleet as it is),
    falling back to `traces` when the window holds none that ran; `facility` only those;
    `trace` only the published traces."""
    from pydantic import ValidationError

    from commonlab.regulation.document import Regulation, regulation_hash
    from commonlab.simulator.inputs import RegulationDocument
    from commonlab.simulator.traces import load_trace
    from commonlab.simulator.whatif import (
        compare,
        pick_workload,
        replay,
        summarise,
    )

    if workload not in WORKLOADS:
        raise CliError(f"--workload must be one of {', '.join(WORKLOADS)}, not {workload!r}")
    client = Client(load_login(url=url))
    motion = client.get(f"/api/v1/motions/{motion_id}")
    if motion["kind"] != "adopt_regulation":
        raise CliError(
            f"motion {motion_id} is a {motion['kind']} motion: only adopt_regulation motions "
            "change the shares a simulation compares"
        )
    # The vote opens when the motion is tabled unless the tabler set a later time; the portal
    # compares a decided motion with the regulation in force then too.
    at = motion["opens_at"]
    in_force = client.get("/api/v1/regulations/in-force", params={"at": at})
    scale = _scale_at(client.get("/api/v1/contribution-scale")["history"], at)
    proposed = Regulation.model_validate(motion["payload"]["regulation"])
    try:
        before = RegulationDocument.model_validate(
            {"regulation": in_force["document"], "contribution_scale": {"shares": scale}}
        )
        after = RegulationDocument.model_validate(
            {"regulation": proposed, "contribution_scale": {"shares": scale}}
        )
    except ValidationError as exc:
        unusable = "the facility's regulation or contribution scale is unusable"
        raise from_validation(exc, where=unusable, document="regulation") from None
    own = None
    if workload != "trace":
        days = {key: day.isoformat() for key, day in (window or {}).items()}
        own = _facility_jobs(client, days)
    kind, fallback = pick_workload(
        cast("WorkloadChoice", workload), own, [path.name for path in traces]
    )
    if fallback:
        console.print(f"[yellow]{fallback}[/yellow]", highlight=False, soft_wrap=True)
    if fleet is None:
        fleet = _facility_fleet(client)
    if kind == "facility" and own is not None:
        given = {"--jobs": jobs, "--load": load, "--scale-to": scale_to}
        given["--size-scale"] = size_scale if size_scale != 1 else None
        reshaping = [option for option, value in given.items() if value is not None]
        if reshaping:
            raise CliError(
                f"the facility's own jobs replay as they were, so {', '.join(reshaping)} (made "
                "to shape a published trace) cannot apply: drop it, or pass --workload trace "
                "with --trace"
            )
        comparison, pools = replay(fleet, before, after, own, policy=policy)
        names = [f"the facility's own jobs, {own.window}"]
        source = {
            "kind": "facility",
            "from": own.start.isoformat(),
            "to": own.end.isoformat(),
            "jobs": own.jobs,
        }
    else:
        loaded = [load_trace(path) for path in traces]
        comparison, pools = compare(
            fleet,
            before,
            after,
            loaded,
            policy=policy,
            jobs=jobs,
            load=load,
            max_runtime=max_runtime,
            scale_to=scale_to,
            size_scale=size_scale,
        )
        names = [path.name for path in traces]
        source = {"kind": "trace", "jobs": sum(len(t) for t in loaded)}
    body = summarise(
        comparison,
        pools=pools,
        traces=names,
        source=source,
        in_force={
            "title": in_force["document"]["title"],
            "sha256": in_force["sha256"],
            "version": in_force["version"],
        },
        proposed={"title": proposed.title, "sha256": regulation_hash(proposed)},
        scale=scale,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(json.dumps(comparison, indent=1))
    _print_comparison(motion, body)
    attached = client.post(f"/api/v1/motions/{motion_id}/simulations", json=body)
    console.print(
        f"Attached simulation {attached['id']} to motion {motion_id} (sha256 "
        f"{attached['sha256'][:16]}…); it shows on the motion's page.",
        highlight=False,
    )


def _facility_fleet(client: Client) -> Any:
    """The facility's fleet as it is (`GET /api/v1/fleet/document`)."""
    from commonlab.compute.fleet_spec import FleetSpec

    try:
        return FleetSpec.model_validate(client.get("/api/v1/fleet/document"))
    except CliError as exc:
        if exc.status in (404, 409):
            raise CliError(f"{exc}: pass --fleet FLEET to simulate on") from None
        raise


def _scale_at(history: list[dict[str, Any]], at: str) -> dict[str, str]:
    """The contribution scale adopted last at or before `at` (ISO 8601)."""
    moment = datetime.fromisoformat(at)
    adopted = [s for s in history if datetime.fromisoformat(s["adopted_at"]) <= moment] or history[
        -1:
    ]
    if not adopted:
        raise CliError("the council has no contribution scale: found the council first")
    return dict(max(adopted, key=lambda s: s["id"])["shares"])


_WHATIF_ROWS = [
    ("utilisation", lambda f: f"{f['utilisation']:.1%}"),
    ("mean wait", lambda f: f"{f['mean_wait_h'] * 60:.1f} min"),
    ("p99 wait", lambda f: f"{f['p99_wait_h'] * 60:.1f} min"),
    ("mean JCT", lambda f: f"{f['mean_jct_h']:.2f} h"),
    ("max shortfall / hour", lambda f: f"{f['max_shortfall_hour']:.1%}"),
    ("Jain (hourly)", lambda f: f"{f['jain_hour']:.3f}"),
]


def _print_comparison(motion: dict[str, Any], body: dict[str, Any]) -> None:
    workload = body["workload"]
    before, after = body["in_force"], body["proposed"]
    console.print(
        f"[bold]Motion {motion['id']}[/bold]: {motion['title']} — {workload['jobs']:,} jobs on "
        f"{workload['fleet_accelerators']:,} accelerators, policy {body['policy']}",
        highlight=False,
    )
    for line in workload["how"]:
        console.print(f"  · {line}", highlight=False, soft_wrap=True)
    for reason, count in sorted(workload["set_aside"].items()):
        console.print(f"  · set aside: {count:,} jobs: {reason}", highlight=False, soft_wrap=True)
    from commonlab.simulator.schemas import WhatIfCreate

    light = WhatIfCreate.model_validate(body).no_difference()
    if light:
        # Equal columns would read as "the proposal changes nothing", which this workload
        # cannot tell.
        console.print(f"[bold]No difference to show[/bold]: {light}.", highlight=False)
        return
    in_force_label = f"in force (v{before['regulation']['version']})"
    table = Table(title="The regulation in force and the proposal", title_justify="left")
    for column in ("", in_force_label, "proposed"):
        table.add_column(column, justify="left" if not column else "right")
    for label, render in _WHATIF_ROWS:
        table.add_row(label, render(before["figures"]), render(after["figures"]))
    console.print(table)
    pools = Table(title="Per pool: entitled · mean / p99 wait · delivered", title_justify="left")
    for column in ("pool", in_force_label, "proposed"):
        pools.add_column(column, justify="left" if column == "pool" else "right")

    def cell(p: dict[str, Any]) -> str:
        return (
            f"{p['entitled']:.1%} · {p['mean_wait_h'] * 60:.1f} / {p['p99_wait_h'] * 60:.1f} min"
            f" · {p['delivered']:.1%}"
        )

    for name, figures in before["figures"]["pools"].items():
        pools.add_row(name, cell(figures), cell(after["figures"]["pools"][name]))
    console.print(pools)


def _facility_jobs(client: Client, days: dict[str, str]) -> OwnJobs:
    """The facility's workload export, read a line at a time as it comes (a quarter can be
    millions of jobs), with a count of the jobs read so far while it runs long."""
    # Here, as in `simulate_motion`: the simulator loads numpy, which no other command needs.
    from commonlab.simulator.whatif import EXPORT, own_jobs

    columns = (TextColumn("reading the facility's jobs"), TextColumn("{task.completed:,}"))
    params = {"format": "ndjson", **days}
    # A large window takes the database a while before its first line.
    timeout = httpx.Timeout(30.0, read=300.0)
    with (
        client.lines(EXPORT, params=params, timeout=timeout) as lines,
        Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar,
    ):
        task = bar.add_task("jobs", total=None)

        def counted() -> Iterator[str]:
            for read, line in enumerate(lines, start=1):
                if read % 10_000 == 0:
                    bar.update(task, completed=read)
                yield line

        return own_jobs(counted())
