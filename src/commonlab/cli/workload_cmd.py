"""`commonlab train|finetune|evaluate`: submit a workload, and `commonlab workload run`, what a
workload job runs inside the facility.

Submitting reads the configuration file (TOML or JSON) and checks it here first, so a
mistake names the file and the field before anything reaches the facility; references
without a version (`datasets/lab/corpus`, `…@v1`) are pinned to the version they name now.

Inside the job, `workload run` reads back the configuration the facility stored, pulls the
dataset and model versions, runs `python -m commonlab.workloads.runtime` (under
`torch.distributed.run` with one process per accelerator when the job has several, and
started on every node by Slurm's `srun` when it has several nodes: `launch_command`), sends
its metrics to the facility as they come, and publishes what it made with a generated card
and its lineage: a model version, or an evaluation's log and scores.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from commonlab.cli import artifacts_cmd, compute_cmd
from commonlab.cli.client import Client, CliError, load_login
from commonlab.cli.render import print_json
from commonlab.errors import InvalidInput
from commonlab.schemas import read_document
from commonlab.workloads.card import model_card
from commonlab.workloads.config import ConfigOf, Kind
from commonlab.workloads.runtime.metrics import read_metrics

__all__ = ["Rendezvous", "first_node", "launch_command", "pin", "register", "rendezvous_port"]

console = Console()
Url = Annotated[str | None, typer.Option("--url", help="facility URL [env: COMMONLAB_URL]")]

# The job's work folder, as `workload run` lays it out (the runtime's Paths).
INPUTS = Path("inputs")
OUTPUT = Path("output")
SCRATCH = Path("checkpoints")  # carried to a resubmission of the job
METRICS = Path("metrics.jsonl")
# How often metrics go to the facility, and how many at most in one request.
SEND_EVERY_SECONDS = 2.0
SEND_AT_MOST = 500


# Submitting -------------------------------------------------------------------------------------


def _submit(kind: Kind, **options: Any) -> None:
    url = options.pop("url")
    as_json = options.pop("as_json")
    watch = options.pop("watch")
    path: Path = options.pop("config")
    try:
        config = read_document(path, ConfigOf[kind], what=f"{kind} configuration")
    except InvalidInput as exc:
        raise CliError(exc.message) from None
    client = Client(load_login(url=url))
    body: dict[str, Any] = {
        "project": options["project"],
        # As written, not as parsed: the facility fills in the defaults and hashes that.
        "config": config.model_dump(mode="json", exclude_unset=True),
        "dataset": pin(client, "datasets", options["dataset"]),
        "model": pin(client, "models", options["model"]),
        "out": _repo_path(kind, options["out"], options["project"]),
        "accelerator": options["accelerator"],
        "accelerators": options["count"],
        "memory_gb": options["memory_gb"],
        "nodes": options["nodes"],
        "time_limit_minutes": options["minutes"],
        "level": options["level"],
    }
    if options["name"]:
        body["name"] = options["name"]
    admitted = client.post(f"/api/v1/workloads/{kind}", json=body)
    if as_json:
        print_json(admitted)
        return
    job_id = admitted["job_id"]
    console.print(
        f"{kind.capitalize()} workload admitted as job {job_id} "
        f"(configuration {admitted['config_sha256'][:12]}…): it publishes to {admitted['out']}."
    )
    if watch:
        raise typer.Exit(compute_cmd.follow_job(client, job_id))
    console.print(f"Follow it with `commonlab job watch {job_id}`.")


def pin(client: Client, kinds: str, ref: str | None) -> str | None:
    """`ns/name`, `ns/name@tag`, `kinds/ns/name@3` → `kinds/ns/name@<number>` (as now)."""
    if ref is None:
        return None
    path = ref if ref.startswith(f"{kinds}/") else f"{kinds}/{ref}"
    repo, _, rev = path.partition("@")
    if rev.isdigit():
        return path
    version = client.get(f"/api/v1/artifacts/{repo}/versions/{rev or 'main'}")
    return f"{repo}@{version['number']}"


def _repo_path(kind: Kind, out: str | None, project: str) -> str | None:
    if out is None:
        return None
    kinds = "datasets" if kind is Kind.EVALUATE else "models"
    path = out if out.startswith(("models/", "datasets/")) else f"{kinds}/{out}"
    if path.count("/") == 1:  # kinds/name: the project's namespace
        path = f"{kinds}/{project}/{path.split('/', 1)[1]}"
    return path


def _command(kind: Kind) -> Any:
    def command(
        project: Annotated[str, typer.Option("--project", "-p", help="the project to charge")],
        config: Annotated[Path, typer.Option("--config", "-c", help="the TOML configuration")],
        dataset: Annotated[
            str | None, typer.Option(help="datasets/ns/name\\[@version] to read")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(help="models/ns/name\\[@version]: the base model, or the one evaluated"),
        ] = None,
        out: Annotated[
            str | None,
            typer.Option(help="the repository to publish to (ns/name; name: the project's)"),
        ] = None,
        accelerator: Annotated[
            str, typer.Option("--accelerator", "-a", help="accelerator class, e.g. H100 or cpu")
        ] = "cpu",
        count: Annotated[
            int, typer.Option("--count", "-n", help="accelerators: one process each")
        ] = 1,
        memory_gb: Annotated[
            int, typer.Option("--memory-gb", help="memory in GB (each node's)")
        ] = 4,
        nodes: Annotated[
            int, typer.Option("--nodes", help="nodes to train on (Slurm), --count processes each")
        ] = 1,
        minutes: Annotated[int, typer.Option("--time", "-t", help="time limit in minutes")] = 60,
        level: Annotated[str, typer.Option(help="containment level, CL-1 to CL-4")] = "CL-1",
        name: Annotated[str | None, typer.Option(help="a name for the job")] = None,
        watch: Annotated[bool, typer.Option("--watch", "-w", help="follow it to the end")] = False,
        url: Url = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the API's answer")] = False,
    ) -> None:
        options = {name: value for name, value in locals().items() if name != "kind"}
        _submit(kind, **options)

    command.__doc__ = {
        Kind.TRAIN: "Train a model from scratch on a dataset version, as a job.",
        Kind.FINETUNE: "Fine-tune a model version (LoRA or full) on a dataset version, as a job.",
        Kind.EVALUATE: "Evaluate a model version on a task made of a dataset's records, as a job.",
    }[kind]
    return command


# Inside the job ---------------------------------------------------------------------------------

workload = typer.Typer(help="What runs inside a workload job.")


@workload.command("run")
def run() -> None:
    """Run this job's workload (inside a facility job: $COMMONLAB_JOB_ID names it)."""
    job_id = os.environ.get("COMMONLAB_JOB_ID", "").strip()
    if not job_id.isdigit():
        raise CliError("`workload run` runs inside a facility job ($COMMONLAB_JOB_ID is not set)")
    client = Client(load_login())
    asked = client.get(f"/api/v1/workloads/{job_id}")
    job = client.get(f"/api/v1/jobs/{job_id}")
    kind = Kind(asked["kind"])
    console.print(f"job {job_id}: {kind} workload, configuration {asked['config_sha256'][:12]}…")
    placement = _placement(job, os.environ)  # before any input is pulled: it may refuse
    data = INPUTS / "dataset"
    model = INPUTS / "model" if asked["model"] else None
    artifacts_cmd.pull_version("dataset", _unkind(asked["dataset"]), data, None)
    if model is not None:
        artifacts_cmd.pull_version("model", _unkind(asked["model"]), model, None)
    OUTPUT.mkdir(exist_ok=True)
    config_file = Path("config.json")
    config_file.write_text(json.dumps(asked["config"]))
    code = _run_runtime(client, int(job_id), kind, job, placement, config_file, data, model)
    if code != 0:
        raise typer.Exit(code)
    results = json.loads((OUTPUT / "results.json").read_text())
    if kind is Kind.EVALUATE:
        _publish_evaluation(client, asked, results)
    elif kind is Kind.INDEX:
        _publish_index(client, asked, job, results)
    elif kind is Kind.EXCLUDE:
        _publish_without_optouts(client, asked, job, results)
    else:
        _publish_model(client, asked, job, results)


def _unkind(ref: str) -> str:
    return ref.split("/", 1)[1]


def _processes(job: dict[str, Any]) -> int:
    """One process per accelerator: GPUs where there are GPUs, cores on a CPU partition."""
    return max(1, int(job["accelerators"]))


# Launching the runtime on one node or several ----------------------------------------------------

RUNTIME = "commonlab.workloads.runtime"
# torchrun's own default port; a job's rendezvous takes one of the thousand above it.
RENDEZVOUS_BASE_PORT = 29500


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of one run meet (torchrun's c10d rendezvous): a host and port every
    node reaches, and an id naming the run."""

    host: str
    port: int
    run_id: str

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def launch_command(
    runtime_args: Sequence[str],
    *,
    python: str,
    processes: int,
    nodes: int = 1,
    rendezvous: Rendezvous | None = None,
    cpus_per_task: int | None = None,
    tasks_per_node: int = 1,
) -> list[str]:
    """The command line that runs the workload runtime (`runtime_args`: what follows
    `python -m commonlab.workloads.runtime`), pure, in one of three shapes:

    - one process: `python -m commonlab.workloads.runtime …`;
    - `processes` on one node: `python -m torch.distributed.run --standalone
      --nproc_per_node=K -m commonlab.workloads.runtime …`;
    - `nodes` > 1 (under Slurm, inside the job's allocation): `srun` starts one torchrun
      agent a node, and the agents meet at `rendezvous` (c10d: the agent on its host serves
      the store) before each starts its `processes`: `srun --nodes=N --ntasks=N
      --ntasks-per-node=1 --kill-on-bad-exit=1 [--cpus-per-task=C] python -m
      torch.distributed.run --nnodes=N --nproc_per_node=K --rdzv-backend=c10d
      --rdzv-endpoint=HOST:PORT --rdzv-id=ID -m commonlab.workloads.runtime …`.
      `--kill-on-bad-exit` ends every node's agent when one fails, instead of leaving the
      others waiting on a collective until the time limit; `--cpus-per-task` is passed on
      because srun (Slurm 22.05 and later) does not inherit the batch job's.

    `tasks_per_node` is for a test only: a single-node cluster stands in for `nodes` nodes
    with that many agents on its one node (production runs one agent a node)."""
    module = ["-m", RUNTIME, *runtime_args]
    if nodes <= 1:
        if processes <= 1:
            return [python, *module]
        return [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={processes}", *module]  # fmt: skip
    if rendezvous is None:
        raise ValueError("a run on several nodes needs a rendezvous for its nodes to meet at")
    srun = [
        "srun", f"--nodes={-(-nodes // tasks_per_node)}", f"--ntasks={nodes}",
        f"--ntasks-per-node={tasks_per_node}", "--kill-on-bad-exit=1",
        *([f"--cpus-per-task={cpus_per_task}"] if cpus_per_task else []),
    ]  # fmt: skip
    torchrun = [
        python, "-m", "torch.distributed.run", f"--nnodes={nodes}",
        f"--nproc_per_node={max(1, processes)}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rendezvous.endpoint}", f"--rdzv-id={rendezvous.run_id}",
    ]  # fmt: skip
    return [*srun, *torchrun, *module]


def first_node(nodelist: str) -> str:
    """The first host of a Slurm node list (`SLURM_JOB_NODELIST`), read without asking
    Slurm: `gpu[07-09,12],cpu1` → `gpu07`, `a,b` → `a`, `node` → `node`."""
    match = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?([^,]*)", nodelist.strip())
    if match is None or not (match.group(1) or match.group(2)):
        raise ValueError(f"{nodelist!r} is not a Slurm node list")
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]  # zero padding is part of the name: keep it
    return prefix + first + suffix


def rendezvous_port(slurm_job_id: int) -> int:
    """The port a job's nodes meet at, on its first node: derived from Slurm's job id, so
    every node computes the same one without talking first (torchrun cannot pick a free port
    for several nodes: the others must know it in advance), and jobs sharing a first node
    take different ports unless their ids agree modulo 1000."""
    return RENDEZVOUS_BASE_PORT + slurm_job_id % 1000


@dataclass(frozen=True)
class _Placement:
    nodes: int
    rendezvous: Rendezvous | None


def _placement(job: dict[str, Any], env: Mapping[str, str]) -> _Placement:
    """On how many nodes this job runs, and where they meet: the facility's `nodes` for the
    job, which Slurm's own count (SLURM_NNODES) must agree with."""
    nodes = int(job.get("nodes") or 1)
    slurm_nodes = int(env.get("SLURM_NNODES") or env.get("SLURM_JOB_NUM_NODES") or 1)
    if nodes <= 1 and slurm_nodes <= 1:
        return _Placement(1, None)
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    slurm_job = env.get("SLURM_JOB_ID", "")
    if not nodelist or not slurm_job.isdigit():
        raise CliError(
            f"this job asks for {nodes} nodes and runs outside Slurm (no SLURM_JOB_NODELIST): "
            "several nodes are started with Slurm's srun; resubmit it with --nodes 1"
        )
    if slurm_nodes != nodes:
        raise CliError(
            f"the facility admitted this job on {nodes} nodes but Slurm gave it "
            f"{slurm_nodes} ({nodelist}): the operator should check the partition's nodes"
        )
    try:
        host = first_node(nodelist)
    except ValueError as exc:
        raise CliError(f"SLURM_JOB_NODELIST: {exc}") from None
    port = rendezvous_port(int(slurm_job))
    return _Placement(nodes, Rendezvous(host=host, port=port, run_id=f"slurm-{slurm_job}"))


def _run_runtime(
    client: Client,
    job_id: int,
    kind: Kind,
    job: dict[str, Any],
    placement: _Placement,
    config: Path,
    data: Path,
    model: Path | None,
) -> int:
    args = [
        kind.value, "--config", str(config), "--data", str(data), "--out", str(OUTPUT),
        "--scratch", str(SCRATCH), "--metrics", str(METRICS),
        *(["--model", str(model)] if model else []),
    ]  # fmt: skip
    # Only training spreads over processes; the others run in one.
    processes = _processes(job) if kind in (Kind.TRAIN, Kind.FINETUNE) else 1
    command = launch_command(
        args,
        python=sys.executable,
        processes=processes,
        nodes=placement.nodes,
        rendezvous=placement.rendezvous,
        cpus_per_task=int(job["cpus"]) if job.get("cpus") else None,
    )
    where = f"{placement.nodes} nodes × " if placement.nodes > 1 else ""
    console.print(f"running the {kind} runtime in {where}{processes} process(es)")
    runtime = subprocess.Popen(command)
    offset = 0
    try:
        while True:
            try:
                runtime.wait(timeout=SEND_EVERY_SECONDS)
            except subprocess.TimeoutExpired:
                offset = _send_metrics(client, job_id, offset)
                continue
            _send_metrics(client, job_id, offset)
            return runtime.returncode
    except BaseException:
        # Cancelled: the runtime saves a checkpoint on SIGTERM; give it the grace it needs.
        runtime.terminate()
        runtime.wait(timeout=30)
        raise


def _send_metrics(client: Client, job_id: int, offset: int) -> int:
    """Forward what the runtime wrote since `offset`; metrics are telemetry: a refusal is
    reported and the training goes on."""
    points, end = read_metrics(METRICS, offset)
    for start in range(0, len(points), SEND_AT_MOST):
        try:
            client.post(
                f"/api/v1/jobs/{job_id}/metrics",
                json={"points": points[start : start + SEND_AT_MOST]},
            )
        except CliError as exc:
            console.print(f"[yellow]metrics not sent:[/yellow] {exc}")
            break
    return end


def _licenses(client: Client, ref: str | None) -> list[str]:
    if ref is None:
        return []
    repo, _, number = ref.partition("@")
    return list(client.get(f"/api/v1/artifacts/{repo}/versions/{number}").get("licenses", []))


def _publish_model(
    client: Client, asked: dict[str, Any], job: dict[str, Any], results: dict[str, Any]
) -> None:
    repo = asked["out"]
    licenses = _licenses(client, asked["dataset"])
    card = model_card(repo=repo, workload=asked, job=job, results=results, licenses=licenses)
    (OUTPUT / "README.md").write_text(card)
    lineage = [f"trained_on:{asked['dataset']}"]
    if asked["model"]:
        lineage.append(f"derived_from:{asked['model']}")
    artifacts_cmd.push_directory(
        "model",
        OUTPUT,
        _unkind(repo),
        message=f"{asked['kind']} by job {job['id']}: final loss {results.get('final_loss')}",
        lineage=lineage,
        job=str(job["id"]),
        licenses=licenses or None,
        level=job["level"],
        stamp=True,
    )


def _visibility(client: Client, ref: str) -> str:
    """The visibility of the repository `ref` is in: an index, or a dataset without opted-out
    records, holds its data's text and is shown to no one more (a new repository is created
    so; the facility refuses a write-down anyway, but only after the job's hours are spent)."""
    return str(client.get(f"/api/v1/artifacts/{ref.partition('@')[0]}")["visibility"])


def _publish_index(
    client: Client, asked: dict[str, Any], job: dict[str, Any], results: dict[str, Any]
) -> None:
    """The index as a dataset version linked `indexes` to what it indexes, at the job's
    level and under the data's licences (it holds the data's text, as token ids)."""
    (OUTPUT / "results.json").unlink()
    version = artifacts_cmd.push_directory(
        "dataset",
        OUTPUT,
        _unkind(asked["out"]),
        message=f"search index of {asked['dataset']} by job {job['id']}: "
        f"{results['records']:,} records, {results['tokens']:,} tokens"
        + (f", {results['excluded']:,} left out by opt-outs" if results.get("excluded") else ""),
        lineage=[f"indexes:{asked['dataset']}"],
        job=str(job["id"]),
        licenses=_licenses(client, asked["dataset"]) or None,
        level=job["level"],
        visibility=_visibility(client, asked["dataset"]),
    )
    console.print(f"{version} indexes {asked['dataset']}: search it with `commonlab search`")


def _publish_without_optouts(
    client: Client, asked: dict[str, Any], job: dict[str, Any], results: dict[str, Any]
) -> None:
    """The dataset without its opted-out records, as a new version derived from the old:
    the published version stays as it was (versions never change), the next one drops them."""
    (OUTPUT / "results.json").unlink()
    if not results["dropped_count"]:
        # The opted-out digests are checked in every version; none was here.
        console.print(f"no record of {asked['dataset']} is opted out: no new version published")
        return
    optouts = asked["config"]["exclude"].get("optouts") or []
    honoured = f" (opt-outs {', '.join(map(str, optouts))})" if optouts else ""
    version = artifacts_cmd.push_directory(
        "dataset",
        OUTPUT,
        _unkind(asked["out"]),
        message=f"{asked['dataset']} without {results['dropped_count']:,} opted-out "
        f"record(s){honoured}, by job {job['id']}",
        lineage=[f"derived_from:{asked['dataset']}"],
        job=str(job["id"]),
        licenses=_licenses(client, asked["dataset"]) or None,
        level=job["level"],
        visibility=_visibility(client, asked["dataset"]),
    )
    console.print(f"{version}: {asked['dataset']} less {results['dropped_count']:,} record(s)")


def _publish_evaluation(client: Client, asked: dict[str, Any], results: dict[str, Any]) -> None:
    repo = asked["out"]
    job_id = os.environ["COMMONLAB_JOB_ID"]
    log_version = artifacts_cmd.push_directory(
        "dataset",
        OUTPUT,
        _unkind(repo),
        message=f"evaluation of {asked['model']} on {results['task']} by job {job_id}",
        lineage=[f"evaluates:{asked['model']}", f"derived_from:{asked['dataset']}"],
        job=job_id,
        level=None,
    )
    published = client.post(
        "/api/v1/evaluations",
        json={
            "job": int(job_id),
            "task": results["task"],
            "harness": results["harness"],
            "model": asked["model"],
            "dataset": asked["dataset"],
            "log": log_version,
            # JSON has no NaN: a score a harness could not compute is left out, not sent.
            "metrics": {
                name: value
                for name, value in results["metrics"].items()
                if isinstance(value, int | float) and math.isfinite(value)
            },
            "samples": results["samples"],
            "sample_root": results["sample_root"],
        },
    )
    scores = ", ".join(f"{k} {v:.4g}" for k, v in published["metrics"].items())
    console.print(
        f"evaluation {published['id']} of {asked['model']} on {results['task']}: {scores} "
        f"over {results['samples']} samples (sample root {results['sample_root'][:12]}…)"
    )


def register(app: typer.Typer) -> None:
    # Index and exclude jobs are submitted by `commonlab index build` and `optout apply`,
    # whose configuration the facility completes (datasearch_cmd).
    for kind in (Kind.TRAIN, Kind.FINETUNE, Kind.EVALUATE):
        app.command(kind.value)(_command(kind))
    app.add_typer(workload, name="workload")
