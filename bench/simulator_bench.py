"""Simulator speed and fidelity.

    .venv/bin/python bench/simulator_bench.py speed --jobs 1000000
    .venv/bin/python bench/simulator_bench.py fidelity

speed: the Alibaba trace stacked to --jobs jobs on examples/fleet-100k.toml (offered load
--load, runtimes cut at 24 h); jobs/s and peak RSS per policy, each run in a forked process,
and beside them a naive baseline (FIFO with unbounded main-pass depth and backfill window,
i.e. a full-queue scan at every event and every backfill pass) on the first --baseline-jobs.
fidelity: the original Alibaba cluster (openb_node_list_gpu_node.csv, one domain per node)
under FIFO + backfill, simulated against recorded queueing delays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "alibaba-gpu-v2023"

from commonlab.compute.fleet_spec import FleetSpec, load_fleet  # noqa: E402
from commonlab.simulator.engine import EngineSettings  # noqa: E402
from commonlab.simulator.facility import load_regulation  # noqa: E402
from commonlab.simulator.run import prepare, run_policies  # noqa: E402
from commonlab.simulator.traces import load_trace  # noqa: E402


def _in_child(fn, *args):
    """Run fn(*args) in a forked process; returns (its result, its peak RSS in MiB)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        result = fn(*args)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with os.fdopen(write, "w") as out:
            json.dump({"result": result, "peak": peak}, out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as source:
        answer = json.load(source)
    os.waitpid(pid, 0)
    return answer["result"], answer["peak"]


def _one(scenario, policy: str, settings: EngineSettings) -> dict:
    report = run_policies(scenario, [policy], settings=settings)
    figures = report["policies"][policy]
    return {
        k: figures[k]
        for k in (
            "seconds",
            "jobs_per_s",
            "utilisation",
            "mean_jct_h",
            "mean_wait_h",
            "p99_wait_h",
            "backfilled_jobs",
        )
    } | {
        "max_shortfall_hour": figures["share_hour"]["max_shortfall"],
        "max_shortfall_day": figures["share_day"]["max_shortfall"],
        "jain_hour": figures["share_hour"]["jain"],
    }


def speed(args: argparse.Namespace) -> None:
    fleet = load_fleet(ROOT / "examples" / "fleet-100k.toml")
    document = load_regulation(ROOT / "examples" / "regulation.json")
    trace = load_trace(TRACES / "openb_pod_list_default.csv")
    began = time.perf_counter()
    scenario = prepare(
        fleet, document, [trace], jobs=args.jobs, load=args.load, max_runtime=24 * 3600
    )
    print(
        f"workload: {len(scenario.workload):,} jobs on {scenario.capacity:,} accelerators, "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    for line in scenario.workload.how:
        print(f"  {line}")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parent peak RSS with the workload loaded: {base_rss:.0f} MiB\n")
    print(
        f"{'policy':<24}{'jobs':>10}{'seconds':>9}{'jobs/s':>9}{'peak MiB':>10}"
        f"{'util':>7}{'mean JCT h':>11}{'p99 wait h':>11}{'shortfall/h':>12}"
    )
    rows = []
    for policy in args.policies:
        figures, peak = _in_child(_one, scenario, policy, EngineSettings())
        rows.append((policy, len(scenario.workload), figures, peak))
        _row(*rows[-1])
    if args.baseline_jobs:
        import numpy as np

        small = prepare(
            fleet, document, [trace], jobs=args.baseline_jobs, load=args.load, max_runtime=24 * 3600
        )
        naive = EngineSettings(main_depth=10**9, backfill_window=10**9)
        for label, settings in (
            ("fifo (bounded, same jobs)", EngineSettings()),
            ("fifo naive full scan", naive),
        ):
            figures, peak = _in_child(_one, small, "fifo", settings)
            _row(label, len(small.workload), figures, peak)
        del np


def _row(policy: str, jobs: int, f: dict, peak: float) -> None:
    print(
        f"{policy:<24}{jobs:>10,}{f['seconds']:>9.1f}{f['jobs_per_s']:>9,.0f}{peak:>10,.0f}"
        f"{f['utilisation']:>7.1%}{f['mean_jct_h']:>11.2f}{f['p99_wait_h']:>11.2f}"
        f"{f['max_shortfall_hour']:>12.1%}",
        flush=True,
    )


def alibaba_fleet() -> FleetSpec:
    """The original cluster: one partition per (GPU model, GPUs per node), one domain per
    node (a pod never spans nodes)."""
    import csv
    from collections import Counter

    with (TRACES / "openb_node_list_gpu_node.csv").open(newline="") as handle:
        groups = Counter((row["model"], int(row["gpu"])) for row in csv.DictReader(handle))
    partitions = [
        {
            "name": f"{model.lower()}-{gpus}",
            "site": "alibaba",
            "accelerator": model,
            "nodes": nodes,
            "accelerators_per_node": gpus,
            "nodes_per_domain": 1,
        }
        for (model, gpus), nodes in sorted(groups.items())
    ]
    return FleetSpec.model_validate(
        {"sites": [{"name": "alibaba", "country": "CN"}], "partitions": partitions}
    )


def fidelity(args: argparse.Namespace) -> None:
    fleet = alibaba_fleet()
    document = load_regulation(ROOT / "examples" / "regulation.json")
    trace = load_trace(TRACES / "openb_pod_list_default.csv")
    scenario = prepare(fleet, document, [trace])
    report = run_policies(scenario, ["fifo"], with_fidelity=True)
    fid = report["policies"]["fifo"]["fidelity"]
    print(f"original cluster: {fleet.accelerators:,} GPUs; {len(scenario.workload):,} tasks")
    for line in scenario.workload.how:
        print(f"  {line}")
    print(json.dumps(fid, indent=1))
    print(f"utilisation {report['policies']['fifo']['utilisation']:.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--jobs", type=int, default=1_000_000)
    s.add_argument("--load", type=float, default=0.95)
    s.add_argument("--policies", nargs="+", default=["fifo", "multifactor", "drf", "commonlab"])
    s.add_argument("--baseline-jobs", type=int, default=50_000)
    sub.add_parser("fidelity")
    args = parser.parse_args()
    {"speed": speed, "fidelity": fidelity}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
