"""Fidelity on a real Slurm (issue 19): the test cluster is put under load by a burst of short
jobs from two accounts, more than its CPUs, its accounting is exported as an operator would
(`sacct -P -o JobID,Account,Submit,Start,End,AllocTRES,Partition`), and the simulator replays
the export on a fleet document of the same node, reporting predicted against recorded waits.

The figures are printed (run with `-s`; docs/simulator.md, "Fidelity", quotes them); the
assertions are about structure and sanity, not closeness: every job replayed, some recorded
waits above zero, quantiles ordered, the KS statistic within [0, 1]."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from commonlab.compute.executors.slurm.cli import SlurmCli, SlurmError
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.simulator.inputs import RegulationDocument
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.run import prepare, run_policies
from commonlab.simulator.traces import load_sacct
from tests.slurm_fixtures import SlurmCluster, unique_name

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[2]
# Seconds each job sleeps, alternating between the two accounts: 42 CPU-seconds on the
# test node's two CPUs, so most jobs wait behind others.
SLEEPS = (3, 6, 2, 5, 4, 7, 3, 2, 6, 4)
EXPORT = "JobID,Account,Submit,Start,End,AllocTRES,Partition"
POLICIES = ("fifo", "multifactor")


@pytest.fixture
def two_accounts(slurm_cluster: SlurmCluster) -> Iterator[tuple[str, str]]:
    """Two accounts of this test's own under root, both open to the run-as user."""
    cli = SlurmCli()
    names = (unique_name("fa"), unique_name("fb"))
    for name in names:
        cli.sacctmgr("-i", "add", "account", name, "parent=root", "description=commonlab test")
        cli.sacctmgr("-i", "add", "user", slurm_cluster.run_as, f"account={name}")
    yield names
    for name in names:
        subprocess.run(["scancel", f"--account={name}"], timeout=30, check=False)
        with contextlib.suppress(SlurmError):  # a job still finishing keeps its account
            cli.sacctmgr("-i", "remove", "user", "where", f"name={slurm_cluster.run_as}",
                         f"account={name}")  # fmt: skip
            cli.sacctmgr("-i", "remove", "account", "where", f"name={name}")


def _burst(cluster: SlurmCluster, accounts: tuple[str, str]) -> list[int]:
    """Submit every job at once, as fast as sbatch answers; their Slurm ids."""
    cli = SlurmCli()
    workdir = cluster.job_dir("fidelity")
    ids = []
    for i, seconds in enumerate(SLEEPS):
        ids.append(
            cli.submit(
                f"#!/bin/sh\nsleep {seconds}\n",
                account=accounts[i % 2],
                partition=cluster.partition,
                job_name=unique_name("cl-fidelity"),
                time_limit_minutes=2,
                cpus=1,
                memory_mb=100,
                gpus=0,
                workdir=workdir,
                stdout=workdir / f"{i}.out",
                stderr=workdir / f"{i}.err",
                uid=cluster.uid,
            )
        )
    return ids


def _ended_in_accounting(ids: list[int], seconds: float = 80.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        jobs = SlurmCli().jobs(ids)
        if len(jobs) == len(ids) and all(j.finished and j.end for j in jobs.values()):
            return
        if time.monotonic() > deadline:
            pending = {i: j.state for i, j in jobs.items() if not j.finished}
            raise AssertionError(f"jobs not ended in accounting after {seconds:g}s: {pending}")
        time.sleep(1)


def _export(ids: list[int], path: Path) -> None:
    """The operator's export: sacct's own header and time format, no SLURM_TIME_FORMAT."""
    out = subprocess.run(
        ["sacct", "--allusers", "-P", "-o", EXPORT, f"--jobs={','.join(map(str, ids))}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    path.write_text(out)


def test_the_simulator_replays_a_busy_slurm_and_reports_its_waits(
    slurm_cluster: SlurmCluster, two_accounts: tuple[str, str], tmp_path: Path
) -> None:
    ids = _burst(slurm_cluster, two_accounts)
    _ended_in_accounting(ids)
    export = tmp_path / "sacct.txt"
    _export(ids, export)

    trace = load_sacct(export, cpus_as_accelerators=True)
    fleet = FleetSpec.model_validate(slurm_cluster.fleet())
    regulation = RegulationDocument.model_validate(
        json.loads((ROOT / "examples" / "regulation.json").read_text())
    )
    first, second = two_accounts
    scenario = prepare(fleet, regulation, [trace], pool_map=PoolMap.of({first: "DE", second: "FR"}))
    report = run_policies(scenario, POLICIES, with_fidelity=True)

    assert report["workload"]["jobs"] == len(SLEEPS)  # every job replayed, none set aside
    assert report["fleet"]["accelerators"] == slurm_cluster.cpus
    recorded = np.asarray(trace.recorded_wait)
    assert np.all(recorded >= 0) and np.count_nonzero(recorded > 0) > 0  # the node was busy
    print(f"\nsacct export of {len(SLEEPS)} jobs on {slurm_cluster.cpus} CPUs, waits in s:")
    print("policy        jobs  recorded p50/p90/max  simulated p50/p90/max    KS  spearman")
    for policy in POLICIES:
        fid = report["policies"][policy]["fidelity"]
        assert fid["jobs"] == len(SLEEPS)
        assert 0.0 <= fid["ks"] <= 1.0
        for side in ("recorded", "simulated"):
            assert 0 <= fid[f"{side}_median_s"] <= fid[f"{side}_p90_s"] <= fid[f"{side}_p99_s"]
        rec, sim = fid["percentiles"]["recorded_s"], fid["percentiles"]["simulated_s"]
        assert rec[-1] == pytest.approx(recorded.max())
        spearman = "-" if fid["spearman"] is None else f"{fid['spearman']:.2f}"
        print(
            f"{policy:12} {fid['jobs']:5}  {rec[50]:6.1f} {rec[90]:5.1f} {rec[100]:5.1f}"
            f"          {sim[50]:6.1f} {sim[90]:5.1f} {sim[100]:5.1f}"
            f"   {fid['ks']:.2f}  {spearman:>8}"
        )
