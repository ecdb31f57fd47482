"""Training on several nodes, for real, on the single-node test Slurm (scripts/slurm_up).

The cluster has one node, so two `srun` tasks on it stand in for two nodes: the job is
submitted as the facility submits a one-node job (`SlurmCli.submit`, run as clrunner), and
its script runs the command `launch_command` builds for two nodes — `srun` starting one
torchrun agent per task, the agents meeting at a c10d rendezvous on the first node of
`SLURM_JOB_NODELIST` at `rendezvous_port(SLURM_JOB_ID)`, one process each — with only
`tasks_per_node=2` changed. The two-process run must follow a one-process run of the same
global batch within the tolerance of the torchrun test (runtime/test_distributed.py).

Not tested here, for want of a second machine: agents on different hosts, a rendezvous
reached over the network, and the job folder on a filesystem the nodes share.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import time
from pathlib import Path

import pytest

import commonlab
from commonlab.compute.executors.slurm.cli import SlurmCli
from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.workloads.runtime.lm import train_causal_lm
from tests.slurm_fixtures import unique_name
from tests.workloads.runtime.test_distributed import RELATIVE, deterministic_config
from tests.workloads.runtime.test_lm import job_paths
from tests.workloads.runtime.text_data import text_records, write_jsonl

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# What the job's script runs: the launcher's own command line, built inside the allocation
# from Slurm's environment, then exec'd (argv: the runtime's arguments).
LAUNCH = """\
import os, sys
from commonlab.cli.workload_cmd import Rendezvous, first_node, launch_command, rendezvous_port
job = int(os.environ["SLURM_JOB_ID"])
host = first_node(os.environ["SLURM_JOB_NODELIST"])
meet = Rendezvous(host, rendezvous_port(job), f"slurm-{job}")
command = launch_command(sys.argv[1:], python=sys.executable, processes=1, nodes=2,
                         rendezvous=meet, cpus_per_task=1, tasks_per_node=2)
print("launching:", " ".join(command), flush=True)
os.execvp(command[0], command)
"""


def _closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users may not enter, if any."""
    for folder in reversed(path.resolve().parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def _skip_unless_others_can_run_this_python() -> None:
    for what, path in (
        ("this Python", Path(sys.executable)),
        ("commonlab", Path(commonlab.__file__)),
        ("torch", Path(pytest.importorskip("torch").__file__)),
    ):
        if closed := _closed_to_others(path):
            pytest.skip(
                f"{what} ({path.resolve()}) is under {closed}, which other users cannot enter, "
                "so the job's user clrunner cannot run it: run this test from a checkout whose "
                ".venv is built on /usr/bin/python3 (scripts/_venv.sh, as ./scripts/test does)"
            )


def _give_to(folder: Path, uid: int, gid: int) -> None:
    for here, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            os.chown(Path(here) / name, uid, gid)


def _wait(cli: SlurmCli, job_id: int, *, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen = cli.jobs([job_id]).get(job_id)
        if seen is not None and seen.state not in (
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "COMPLETING",
        ):
            return seen.state
        time.sleep(1)
    cli.cancel(job_id)
    raise AssertionError(f"Slurm job {job_id} did not end within {seconds}s")


def test_two_nodes_under_srun_follow_the_one_process_run(slurm_cluster, slurm_account, tmp_path):
    _skip_unless_others_can_run_this_python()
    folder = slurm_cluster.job_dir("two-nodes")
    data = write_jsonl(folder / "data", text_records(200))
    config = deterministic_config()
    # One process, accumulating two micro-batches of 4: the two tasks' global batch of 8.
    single = train_causal_lm(
        config.model_copy(update={"micro_batch_size": 4}), job_paths(tmp_path / "one", data)
    )

    (folder / "config.json").write_text(config.model_dump_json())
    (folder / "launch.py").write_text(LAUNCH)
    paths = job_paths(folder / "two", data)
    runtime_args = [
        "train", "--config", str(folder / "config.json"), "--data", str(data),
        "--out", str(paths.out), "--scratch", str(paths.scratch), "--metrics", str(paths.metrics),
    ]  # fmt: skip
    script = f"#!/bin/sh\nexec {shlex.join([sys.executable, 'launch.py', *runtime_args])}\n"
    _give_to(folder, slurm_cluster.uid, slurm_cluster.gid)
    cli = SlurmCli()
    job_id = cli.submit(
        script,
        account=slurm_account,
        partition=slurm_cluster.partition,
        job_name=unique_name("cl-two-nodes"),
        time_limit_minutes=10,
        cpus=2,
        memory_mb=4096,
        gpus=0,
        workdir=folder,
        stdout=folder / "stdout.log",
        stderr=folder / "stderr.log",
        uid=slurm_cluster.uid,
        environment={"OMP_NUM_THREADS": "1", "HF_HOME": str(folder / "hf")},
    )
    state = _wait(cli, job_id, seconds=540)
    stdout = (folder / "stdout.log").read_text(errors="replace")
    stderr = (folder / "stderr.log").read_text(errors="replace")
    assert state == "COMPLETED", stdout[-2000:] + stderr[-4000:]

    # The launcher's two-node command ran: srun's two tasks, one agent and process each.
    assert f"--rdzv-endpoint=localhost:{29500 + job_id % 1000}" in stdout, stdout
    assert "srun --nodes=1 --ntasks=2 --ntasks-per-node=2 --kill-on-bad-exit=1" in stdout
    results = json.loads((paths.out / "results.json").read_text())
    assert results["processes"] == 2
    assert results["tokens"] == single["tokens"]
    assert results["losses"] == pytest.approx(single["losses"], rel=RELATIVE)
    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    logged = [entry for entry in lines if CHECKPOINT_METRIC not in entry]
    assert [entry["step"] for entry in logged] == [2, 4, 6, 8]  # once, from rank 0 only
    assert [entry["step"] for entry in lines if CHECKPOINT_METRIC in entry] == [4, 8]
    checkpoint = paths.scratch / "step-00000008"
    assert sorted(p.name for p in checkpoint.glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
