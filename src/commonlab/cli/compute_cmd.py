"""Jobs and the fleet from the command line: submit and watch a job live (its state, time,
output and latest loss), list, show, read logs, cancel, resubmit; see the fleet's capacity
and use, apply a fleet document."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import console, print_json, print_table

__all__ = ["follow_job", "register"]

Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]
JobId = Annotated[int, typer.Argument(min=1, help="the job's number")]

job = typer.Typer(help="Jobs: submit (and watch), list, show, logs, cancel, resubmit.")
fleet = typer.Typer(help="The fleet: capacity and use per partition; apply a fleet document.")

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "refused"}
STATE_STYLE = {
    "admitted": "cyan",
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
    "timed_out": "red",
    "refused": "red",
}


def _client(url: str | None) -> Client:
    return Client(load_login(url=url))


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--env {pair!r}: write NAME=value")
        env[name] = value
    return env


@job.command("submit")
def submit(
    command: Annotated[list[str], typer.Argument(help="the command line, after --")],
    project: Annotated[str, typer.Option("--project", "-p", help="the project to charge")],
    accelerator: Annotated[
        str, typer.Option("--accelerator", "-a", help="accelerator class, e.g. H100 or cpu")
    ] = "cpu",
    count: Annotated[
        int, typer.Option("--count", "-n", help="how many accelerators (each node's)")
    ] = 1,
    cpus: Annotated[int | None, typer.Option(help="CPUs [default: one per accelerator]")] = None,
    memory_gb: Annotated[int, typer.Option("--memory-gb", help="memory in GB (each node's)")] = 1,
    nodes: Annotated[int, typer.Option("--nodes", help="nodes to run on, one task each")] = 1,
    minutes: Annotated[int, typer.Option("--time", "-t", help="time limit in minutes")] = 60,
    level: Annotated[str, typer.Option(help="containment level, CL-1 to CL-4")] = "CL-1",
    name: Annotated[str, typer.Option(help="a name for the job")] = "job",
    allocation: Annotated[int | None, typer.Option(help="which allocation, if several")] = None,
    env: Annotated[list[str], typer.Option("--env", "-e", help="NAME=value, repeatable")] = [],  # noqa: B006
    inputs: Annotated[
        list[str], typer.Option("--input", "-i", help="datasets/ns/name@N, repeatable")
    ] = [],  # noqa: B006
    watch: Annotated[bool, typer.Option("--watch", "-w", help="follow it live to the end")] = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Submit a job: `commonlab job submit -p proj-1 -n 2 --watch -- python train.py`."""
    body: dict[str, Any] = {
        "name": name,
        "project": project,
        "command": " ".join(command),
        "accelerator": accelerator,
        "accelerators": count,
        "memory_gb": memory_gb,
        "nodes": nodes,
        "time_limit_minutes": minutes,
        "level": level,
        "env": _env(env),
        "inputs": inputs,
    }
    if cpus is not None:
        body["cpus"] = cpus
    if allocation is not None:
        body["allocation_id"] = allocation
    client = _client(url)
    created = client.post("/api/v1/jobs", json=body)
    if as_json:
        print_json(created)
        return
    console.print(
        f"Job {created['id']} admitted on partition {created['partition']}: "
        f"{created['reserved_hours']} {created['accelerator']}-hours held on allocation "
        f"{created['allocation_id']}."
    )
    if watch:
        raise typer.Exit(follow_job(client, created["id"]))


@job.command("watch")
def watch(job_id: JobId, url: Url = None) -> None:
    """Follow a job live: its state, time against its limit, and its output."""
    raise typer.Exit(follow_job(_client(url), job_id))


def follow_job(client: Client, job_id: int) -> int:
    """Show the job until it ends; the exit status is 0 only if it succeeded."""
    current = client.get(f"/api/v1/jobs/{job_id}")
    limit = current["time_limit_minutes"] * 60
    offset = 0
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]job {task.fields[id]}[/] {task.fields[state]}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s of its limit"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[loss]}"),
    )
    loss = _LatestLoss(client, job_id)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(
            "", total=limit, id=job_id, state=_styled(current["state"]), loss=""
        )
        while True:
            current = client.get(f"/api/v1/jobs/{job_id}")
            chunk = client.get(f"/api/v1/jobs/{job_id}/logs", params={"offset": offset})
            if chunk["text"]:
                progress.console.print(chunk["text"], end="", markup=False, highlight=False)
            offset = chunk["offset"]
            shown = shown_state(current["state"], has_output=offset > 0)
            progress.update(task, completed=_ran(current), state=_styled(shown), loss=loss.poll())
            if current["state"] in TERMINAL and not chunk["text"]:
                break
            time.sleep(0.5)
    charged = current["charged_hours"]
    last = loss.poll()
    console.print(
        f"Job {job_id} {_styled(current['state'])}"
        + (f" (exit {current['exit_code']})" if current["exit_code"] is not None else "")
        + (f": {current['reason']}" if current["reason"] else "")
        + f"; charged {charged} {current['accelerator']}-hours"
        + (f"; last {last}." if last else ".")
    )
    if current["state"] != "succeeded":
        _print_stderr_tail(client, job_id)
    return 0 if current["state"] == "succeeded" else 1


class _LatestLoss:
    """The job's latest loss and its step, as "loss 2.31 at step 40" ("" until it posts one),
    read from its metrics at each look."""

    def __init__(self, client: Client, job_id: int) -> None:
        self._client = client
        self._url = f"/api/v1/jobs/{job_id}/metrics"
        self._seen: int | None = None
        self._text = ""
        self._available = True

    def poll(self) -> str:
        if not self._available:
            return self._text
        # Only the latest value is wanted: ask for the steps after the one already shown, so
        # the answer carries no points, only `latest`.
        params: dict[str, Any] = {"names": "loss", "limit": 1}
        if self._seen is not None:
            params["after_step"] = self._seen
        try:
            latest = self._client.get(self._url, params=params)["latest"].get("loss")
        except CliError as exc:
            # A facility without job metrics (no such route) still shows the job, without a
            # loss; a passing failure only leaves the last one shown until the next look.
            self._available = exc.status != 404
            return self._text
        if latest is not None:
            self._seen = latest["step"]
            self._text = f"loss {latest['value']:.4g} at step {latest['step']}"
        return self._text


def _print_stderr_tail(client: Client, job_id: int, *, tail_bytes: int = 2048) -> None:
    """Where a job went wrong is usually at the end of its standard error."""
    url = f"/api/v1/jobs/{job_id}/logs"
    size = client.get(url, params={"stream": "stderr", "limit": 1})["size"]
    if not size:
        return
    start = max(0, size - tail_bytes)
    text = client.get(url, params={"stream": "stderr", "offset": start, "limit": tail_bytes})
    lines = text["text"].splitlines()[-10:]
    console.print(f"[dim]last lines of its standard error (commonlab job logs {job_id} "
                  "--stderr for all):[/dim]")  # fmt: skip
    console.print("\n".join(lines), markup=False, highlight=False)


def shown_state(state: str, *, has_output: bool) -> str:
    """The state to show beside a job's streaming output. The facility learns that a job
    started at its controller's next look (up to a second later); a job that has printed
    something is running, whatever that look has not yet seen."""
    return "running" if has_output and state in ("admitted", "queued") else state


def _ran(job: dict[str, Any]) -> float:
    if not job["started_at"]:
        return 0.0
    if job["elapsed_seconds"] is not None:
        return float(job["elapsed_seconds"])
    started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - started).total_seconds()


def _styled(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


@job.command("list")
def job_list(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Jobs of your projects (every project's, for operators)."""
    params: dict[str, Any] = {"limit": 500}
    if project:
        params["project"] = project
    if state:
        params["state"] = state
    items = _client(url).get("/api/v1/jobs", params=params)["items"]
    if as_json:
        print_json(items)
        return
    rows = [
        {
            **j,
            "resources": f"{_on_nodes(j)}{j['accelerators']} {j['accelerator']}",
            "state": j["state"],
        }
        for j in items
    ]
    print_table(
        rows,
        ["id", "name", "project", "state", "resources", "partition", "charged_hours"],
        title="Jobs",
    )


@job.command("show")
def show(job_id: JobId, url: Url = None, as_json: Json = False) -> None:
    """A job, where it ran, what it was charged, and its history."""
    found = _client(url).get(f"/api/v1/jobs/{job_id}")
    if as_json:
        print_json(found)
        return
    console.print(f"[bold]Job {found['id']}[/] {found['name']} — {_styled(found['state'])}")
    if found["reason"]:
        console.print(f"  {found['reason']}")
    console.print(
        f"  project {found['project']} · allocation {found['allocation_id']} · "
        f"CL-{found['level']} · partition {found['partition']} ({found['executor']})\n"
        f"  {_on_nodes(found)}{found['accelerators']} {found['accelerator']}, "
        f"{found['cpus']} CPUs, {found['memory_gb']} GB, limit {found['time_limit_minutes']} min\n"
        f"  reserved {found['reserved_hours']} h · charged {found['charged_hours'] or '-'} h"
        + (f" · exit {found['exit_code']}" if found["exit_code"] is not None else "")
    )
    console.print(f"  $ {found['command']}", markup=False, highlight=False)
    print_table(found["transitions"], ["state", "at", "reason"], title="History")


def _on_nodes(job: dict[str, Any]) -> str:
    """`2 nodes × ` before a job's per-node resources; nothing for one node (or an older
    facility that does not say)."""
    nodes = int(job.get("nodes") or 1)
    return f"{nodes} nodes × " if nodes > 1 else ""


@job.command("logs")
def logs(
    job_id: JobId,
    stderr: Annotated[bool, typer.Option("--stderr", help="standard error instead")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep reading until it ends")
    ] = False,
    url: Url = None,
) -> None:
    """A job's output, readable while it runs."""
    client = _client(url)
    offset = 0
    stream = "stderr" if stderr else "stdout"
    while True:
        chunk = client.get(
            f"/api/v1/jobs/{job_id}/logs", params={"stream": stream, "offset": offset}
        )
        if chunk["text"]:
            console.print(chunk["text"], end="", markup=False, highlight=False, soft_wrap=True)
        offset = chunk["offset"]
        if not follow or (chunk["finished"] and not chunk["text"]):
            return
        if not chunk["text"]:
            time.sleep(0.5)


@job.command("cancel")
def cancel(job_id: JobId, url: Url = None, as_json: Json = False) -> None:
    """Cancel a job; the executor stops it and it is charged for the time it ran."""
    client = _client(url)
    answer = client.post(f"/api/v1/jobs/{job_id}/cancel")
    deadline = time.monotonic() + 30
    while answer["state"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.3)
        answer = client.get(f"/api/v1/jobs/{job_id}")
    if as_json:
        print_json(answer)
        return
    if answer["state"] in TERMINAL:
        console.print(f"Job {job_id} {_styled(answer['state'])}.")
    else:
        console.print(f"Job {job_id}: cancel requested; it is still {answer['state']}.")


@job.command("resubmit")
def resubmit(
    job_id: JobId,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="follow it live")] = False,
    url: Url = None,
) -> None:
    """Run an ended job's spec again as a new job."""
    client = _client(url)
    created = client.post(f"/api/v1/jobs/{job_id}/resubmit")
    console.print(f"Job {created['id']} admitted (a resubmission of job {job_id}).")
    if watch:
        raise typer.Exit(follow_job(client, created["id"]))


@fleet.command("show")
def fleet_show(url: Url = None, as_json: Json = False) -> None:
    """Capacity and current use per site and partition."""
    answer = _client(url).get("/api/v1/fleet")
    if as_json:
        print_json(answer)
        return
    rows = [
        {
            **p,
            "level": f"CL-{p['certified_level']}",
            "nodes": f"{p['nodes_up']} up"
            + (f" of {p['nodes']}" if p.get("nodes", p["nodes_up"]) != p["nodes_up"] else ""),
            "use": _bar(p["accelerators_in_use"], p["accelerators_up"], width=8),
            "jobs": f"{p['jobs_running']} run · {p['jobs_waiting']} wait",
        }
        for p in answer["partitions"]
    ]
    print_table(
        rows,
        ["name", "site", "accelerator", "level", "nodes", "use", "jobs"],
        title=f"Fleet: {answer['accelerators_in_use']} of {answer['accelerators']} accelerators "
        "in use (use: in use / in service)",
        headers={"name": "partition", "accelerator": "class"},
    )


def _bar(used: int, total: int, width: int = 10) -> str:
    filled = 0 if total <= 0 else round(width * min(used, total) / total)
    return "█" * filled + "░" * (width - filled) + f" {used}/{total}"


@fleet.command("apply")
def fleet_apply(
    path: Annotated[Path, typer.Argument(help="a fleet document, .toml or .json")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Make the fleet match a fleet document (operators). Certification needs a motion."""
    # Checked here first, so a bad file is one line naming the field before anything is sent.
    # Imported here: the fleet schema pulls in pydantic, which no other command needs at start.
    from commonlab.compute.fleet_spec import load_fleet

    document = load_fleet(path).model_dump(mode="json")
    answer = _client(url).put("/api/v1/fleet", json=document)
    if as_json:
        print_json(answer)
        return
    console.print(
        f"Fleet applied: {answer['sites']} sites, {answer['partitions']} partitions, "
        f"{answer['accelerators']} accelerators ({answer['nodes_added']} nodes added, "
        f"{answer['nodes_removed']} removed)."
    )
    for pending in answer["certification_pending"]:
        console.print(
            f"  {pending['partition']}: asks CL-{pending['asked']}; table a certify_partition "
            "motion for the council to certify it."
        )


@fleet.command("node")
def fleet_node(
    node: Annotated[str, typer.Argument(help="the node's name")],
    state: Annotated[str, typer.Option(help="up, drain or down")],
    url: Url = None,
) -> None:
    """Take a node out of service or bring it back (operators)."""
    answer = _client(url).post(f"/api/v1/fleet/nodes/{node}/state", json={"state": state})
    console.print(f"Node {answer['node']} is {answer['state']}.")


@fleet.command("sync-accounts")
def fleet_sync(
    force: Annotated[bool, typer.Option(help="also overwrite values changed by hand")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only show the plan")] = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Mirror governance into Slurm's accounts (operators); drift is reported, not overwritten."""
    answer = _client(url).post(
        "/api/v1/fleet/accounts/sync", json={"force": force, "dry_run": dry_run}
    )
    if as_json:
        print_json(answer)
        return
    verb = "would change" if dry_run else "changed"
    console.print(f"Slurm accounts: {len(answer['changes'])} {verb}, {len(answer['drift'])} drift.")
    for line in answer["changes"]:
        console.print(f"  [green]change[/] {line}", highlight=False)
    for line in answer["drift"]:
        console.print(f"  [yellow]drift[/]  {line}", highlight=False)


@fleet.command("steer")
def fleet_steer(
    window_days: Annotated[int, typer.Option(help="compare delivered hours over this window")] = 7,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """One step of the share controller: move member-state fair shares toward entitlement."""
    answer = _client(url).post("/api/v1/fleet/shares/steer", json={"window_days": window_days})
    if as_json:
        print_json(answer)
        return
    rows = [
        {
            "state": code,
            "entitled": f"{share:.1%}",
            "delivered_hours": f"{answer['delivered_hours'].get(code, 0):.2f}",
            "fair_hours": f"{answer['fair_hours'].get(code, 0):.2f}",
            "waiting": "yes" if answer["waiting"].get(code) else "",
            "fairshare": (
                f"{answer['fairshare'][code]['from']} → {answer['fairshare'][code]['to']}"
                if code in answer["fairshare"]
                else "unchanged"
            ),
            "cap": _cap(answer.get("caps", {}).get(code)),
        }
        for code, share in sorted(answer["entitled"].items())
    ]
    print_table(
        rows,
        ["state", "entitled", "delivered_hours", "fair_hours", "waiting", "fairshare", "cap"],
        title="Share controller",
    )
    for job in answer.get("requeued", []):
        console.print(
            f"requeued Slurm job {job['slurm_job']} (job {job['job'] or '-'}) of {job['state']}: "
            f"{job['accelerators']} {job['tres']} back for the states below their fair split",
            highlight=False,
        )
    for job in answer.get("pinned", []):
        console.print(
            f"pinned Slurm job {job['slurm_job']} (job {job['job'] or '-'}) of {job['state']} "
            "to the top of the queue: Slurm holds room for it, and its state is at or under "
            "its target",
            highlight=False,
        )


def _cap(change: dict[str, Any] | None) -> str:
    """A member state's cap (GrpTRES) as this step changed it; "" where it did not."""
    if change is None:
        return ""
    to = ", ".join(f"{tres}={n}" for tres, n in sorted(change["to"].items()))
    return f"set {to}" if to else "lifted"


def register(app: typer.Typer) -> None:
    app.add_typer(job, name="job")
    app.add_typer(fleet, name="fleet")
