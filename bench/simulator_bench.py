"""Simulator speed and fidelity.

    .venv/bin/python bench/simulator_bench.py speed --jobs 1000000
    .venv/bin/python bench/simulator_bench.py speed --jobs 1000000 --compare
    .venv/bin/python bench/simulator_bench.py deep --jobs 200000 --load 1.3 --window 500 --compare
    .venv/bin/python bench/simulator_bench.py controller --jobs 1000000
    .venv/bin/python bench/simulator_bench.py fidelity

speed: the Alibaba trace stacked to --jobs jobs on examples/fleet-100k.toml (offered load
--load, runtimes cut at 24 h, job sizes x --size-scale); jobs/s and peak RSS per policy,
each run in a forked process, and beside them a naive baseline (FIFO with unbounded
main-pass depth and backfill window, i.e. a full-queue scan at every event and every
backfill pass) on the first --baseline-jobs. With --compare: each policy under the engine
as it was before issue 14 split it into parts (bench/simulator_engine_before.py) and the
split one, alternating, --repeat times each; the best times, their ratio, and whether the
two gave identical results.
deep: a seeded workload where tens of thousands of jobs wait (see `_deep`) under every
policy at backfill window --window, with the queue's depth; with --compare, the engine with
issue 19's deep-queue commits undone (--baseline) beside the package's, as in speed.
controller: the study's workload (sizes x 8, load 1.1) at --jobs jobs under multifactor,
multifactor with commonlab's job-size factor, commonlab, and commonlab with reclaim by
preemption: what the size factor, the controller and reclaim change.
fidelity: the original Alibaba cluster (openb_node_list_gpu_node.csv, one domain per node)
under FIFO + backfill at the recorded submit times, simulated against recorded queueing
delays, and what the recorded delays depend on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces" / "alibaba-gpu-v2023"

from commonlab.simulator.engine import EngineSettings  # noqa: E402
from commonlab.simulator.inputs import load_fleet, load_regulation, partitions  # noqa: E402
from commonlab.simulator.metrics import measure  # noqa: E402
from commonlab.simulator.policies import make_policy  # noqa: E402
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


def _simulate(engine: str):
    """The engine to run: "split" (the package's), "before" (the one before issue 14 split
    it, kept in bench/simulator_engine_before.py) or the folder `_engine_without` made."""
    if engine == "split":
        from commonlab.simulator.engine import simulate

        return simulate
    if engine == "before":
        sys.path.insert(0, str(ROOT / "bench"))
        from simulator_engine_before import simulate as before

        return before
    import importlib

    folder = Path(engine)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module(folder.name).simulate


# Issue 19's commits for deep queues, newest first: `_engine_without` undoes them.
DEEP_COMMITS = ("83c2bd0", "ac60c9a", "85815d2")


def _engine_without(commits: Sequence[str]) -> Path:
    """The package's engine as it is now with `commits`' changes to it undone, written into
    build/ as a package of its own (its imports of itself renamed), so that it runs beside
    the package's engine in one process with the same policies and metrics (which keep
    changing under other work: only the changes timed are taken back)."""
    import shutil
    import subprocess
    import tempfile

    inside = "src/commonlab/simulator/engine"
    name = "engine_without_" + "_".join(commits)
    target = ROOT / "build" / "bench-engines" / name
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(ROOT / inside, Path(scratch) / inside)
        for commit in commits:
            patch = subprocess.run(
                ["git", "-C", str(ROOT), "show", "--format=", commit, "--", inside],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            subprocess.run(["git", "apply", "-R"], input=patch, text=True, cwd=scratch, check=True)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for source in (Path(scratch) / inside).glob("*.py"):
            text = source.read_text().replace("commonlab.simulator.engine", name)
            (target / source.name).write_text(text)
    return target


def _one(scenario, policy: str, settings: EngineSettings, engine: str = "split") -> dict:
    simulate = _simulate(engine)
    workload = scenario.workload
    entitled = [scenario.entitlements.shares[p] for p in workload.pools]
    began, cpu = time.perf_counter(), time.process_time()
    outcome = simulate(
        workload,
        scenario.parts,
        scenario.eligible,
        make_policy(policy),
        entitled=entitled,
        settings=settings,
    )
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    if not hasattr(outcome, "cut_kept"):
        import numpy as np

        outcome.cut_kept = np.zeros(0)  # the engine before issue 14 had no checkpoints
    figures = measure(workload, outcome, capacity=scenario.capacity, entitled=entitled)
    figures["seconds"] = seconds
    figures["cpu_seconds"] = cpu
    figures["jobs_per_s"] = len(workload) / seconds
    figures["digest"] = _digest(outcome)
    figures["waiting_median"], figures["waiting_10k"] = _queue_depth(workload, outcome)
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
            "preemptions",
            "lost_accelerator_hours",
        )
    } | {
        "max_dev_hour": figures["share_hour"]["max_abs_deviation"],
        "jain_hour": figures["share_hour"]["jain"],
        "digest": figures["digest"],
        "cpu_seconds": figures["cpu_seconds"],
        "waiting_median": figures["waiting_median"],
        "waiting_10k": figures["waiting_10k"],
    }


def _queue_depth(workload, outcome, samples: int = 1000) -> tuple[float, float]:
    """How deep the queue ran while jobs arrived: the median number of jobs waiting
    (submitted, not yet started) at `samples` even times over the submit span, and the
    fraction of those times at which 10,000 or more waited."""
    import numpy as np

    submit = np.sort(workload.submit)
    start = np.sort(np.nan_to_num(outcome.start, nan=np.inf))
    times = np.linspace(submit[0], submit[-1], samples)
    waiting = np.searchsorted(submit, times, "right") - np.searchsorted(start, times, "right")
    return float(np.median(waiting)), float(np.mean(waiting >= 10_000))


def _digest(outcome) -> str:
    """Every job's start, end and partition and every cut run, hashed: equal digests, equal
    results."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for column in (
        outcome.start,
        outcome.end,
        outcome.partition.astype(np.int64),
        outcome.preempted_seconds,
        outcome.cut_job,
        outcome.cut_start,
        outcome.cut_end,
    ):
        h.update(np.ascontiguousarray(column).tobytes())
    return h.hexdigest()[:16]


def _study(args: argparse.Namespace, jobs: int | None = None) -> Any:
    """The study's workload (the shared trace on the 100k fleet) at --load and --size-scale,
    with --jobs jobs unless `jobs` says otherwise."""
    return prepare(
        load_fleet(ROOT / "examples" / "fleet-100k.toml"),
        load_regulation(ROOT / "examples" / "regulation.json"),
        [load_trace(TRACES / "openb_pod_list_default.csv")],
        jobs=jobs or args.jobs,
        load=args.load,
        max_runtime=24 * 3600,
        size_scale=args.size_scale,
    )


def _deep(args: argparse.Namespace) -> Any:
    """The deep-queue workload: --jobs seeded jobs on examples/fleet-100k.toml at --load,
    runtimes lognormal from minutes to two weeks (median 2 h), gangs of 1 to 1/8 of the
    fleet (mostly small: each doubling 0.45 times as likely), one in five bound to
    H100s, small gangs often inside one domain, 220 tenants in the regulation's 11 pools.
    Above load 1 the queue grows all run long: tens of thousands wait."""
    import numpy as np

    from commonlab.simulator.run import Scenario, entitlements
    from commonlab.simulator.traces import Trace
    from commonlab.simulator.workload import bind_classes, build_workload

    rng = np.random.default_rng(args.seed)
    fleet = load_fleet(ROOT / "examples" / "fleet-100k.toml")
    shares = entitlements(load_regulation(ROOT / "examples" / "regulation.json"))
    parts_capacity = fleet.accelerators
    n = args.jobs
    largest = int(np.log2(parts_capacity // 8))
    doubling = 0.45 ** np.arange(largest + 1)
    sizes = 2 ** rng.choice(largest + 1, n, p=doubling / doubling.sum())
    runtime = np.clip(rng.lognormal(np.log(7200), 2.0, n), 120, 14 * 86_400).round()
    tenants = 20 * len(shares.pools)
    tenant = rng.zipf(1.3, n) % tenants
    trace = Trace(
        name="deep",
        path=Path(f"deep-seed{args.seed}"),
        kind="generated",
        submit=np.sort(rng.uniform(0, n, n)).tolist(),
        runtime=runtime.tolist(),
        accelerators=sizes.tolist(),
        tenant=[f"t{t:03d}" for t in tenant.tolist()],
        classes=[("H100",) if bound else () for bound in (rng.random(n) < 0.2).tolist()],
        one_domain=((sizes <= 64) & (rng.random(n) < 0.5)).tolist(),
        recorded_wait=[float("nan")] * n,
        line=list(range(n)),
    )
    tenant_pools = {f"t{t:03d}": shares.pools[t % len(shares.pools)] for t in range(tenants)}
    workload = build_workload(
        [trace],
        pools=shares.pools,
        load=args.load,
        accelerators=parts_capacity,
        tenant_pools=tenant_pools,
    )
    parts = partitions(fleet)
    workload, eligible = bind_classes(workload, parts)
    return Scenario(workload, parts, eligible, shares)


def speed(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    scenario = _study(args)
    print(
        f"workload: {len(scenario.workload):,} jobs on {scenario.capacity:,} accelerators, "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    for line in scenario.workload.how:
        print(f"  {line}")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parent peak RSS with the workload loaded: {base_rss:.0f} MiB\n")
    if args.compare:
        _compare(args, scenario)
        return
    print(
        f"{'policy':<24}{'jobs':>10}{'seconds':>9}{'jobs/s':>9}{'peak MiB':>10}"
        f"{'util':>7}{'mean JCT h':>11}{'p99 wait h':>11}{'dev/h pt':>9}{'preempt':>9}"
        f"{'lost h':>9}"
    )
    rows = []
    for policy in args.policies:
        figures, peak = _in_child(_one, scenario, policy, EngineSettings())
        rows.append((policy, len(scenario.workload), figures, peak))
        _row(*rows[-1])
    if args.baseline_jobs:
        import numpy as np

        small = _study(args, jobs=args.baseline_jobs)
        naive = EngineSettings(main_depth=10**9, backfill_window=10**9)
        for label, settings in (
            ("fifo (bounded, same jobs)", EngineSettings()),
            ("fifo naive full scan", naive),
        ):
            figures, peak = _in_child(_one, small, "fifo", settings)
            _row(label, len(small.workload), figures, peak)
        del np


def deep(args: argparse.Namespace) -> None:
    """The deep-queue workload under every policy at backfill window --window; with
    --compare, the engine without the --baseline commits beside the package's."""
    began = time.perf_counter()
    scenario = _deep(args)
    print(
        f"workload: {len(scenario.workload):,} jobs on {scenario.capacity:,} accelerators, "
        f"built in {time.perf_counter() - began:.1f} s"
    )
    for line in scenario.workload.how:
        print(f"  {line}")
    print(f"backfill window {args.window}\n")
    settings = EngineSettings(backfill_window=args.window)
    if args.compare:
        _compare(args, scenario, settings, baseline=args.baseline)
        return
    print(
        f"{'policy':<24}{'jobs':>10}{'seconds':>9}{'jobs/s':>9}{'peak MiB':>10}"
        f"{'util':>7}{'mean JCT h':>11}{'p99 wait h':>11}{'dev/h pt':>9}{'preempt':>9}"
        f"{'lost h':>9}{'waiting':>9}{'>=10k':>7}"
    )
    for policy in args.policies:
        figures, peak = _in_child(_one, scenario, policy, settings)
        _row(policy, len(scenario.workload), figures, peak, depth=True)


def _compare(
    args: argparse.Namespace,
    scenario,
    settings: EngineSettings = EngineSettings(),
    baseline: str = "before",
) -> None:
    """Each policy under the `baseline` engine (see `_simulate`) and the package's,
    alternating, each run in a forked process; per engine the median of --repeat runs (wall
    and CPU seconds: the machine is shared, and CPU time is what the engine itself spent),
    their ratio, jobs per CPU second, and whether every run gave the same results."""
    if baseline == "before":
        print("before: the engine before issue 14 split it")
    else:
        print(f"before: the engine without commits {baseline}")
        baseline = str(_engine_without(baseline.split(",")))
    print(
        f"{'policy':<18}{'before s':>10}{'now s':>10}{'ratio':>8}"
        f"{'before CPU s':>14}{'now CPU s':>13}{'ratio':>8}{'before jobs/s':>15}"
        f"{'now jobs/s':>12}{'waiting':>9}{'>=10k':>7}{'results':>11}"
    )
    jobs = len(scenario.workload)
    for policy in args.policies:
        runs: dict[str, list[dict]] = {baseline: [], "split": []}
        for _ in range(args.repeat):
            for engine in (baseline, "split"):
                figures, _ = _in_child(_one, scenario, policy, settings, engine)
                runs[engine].append(figures)
        wall = {e: statistics.median(f["seconds"] for f in runs[e]) for e in runs}
        cpu = {e: statistics.median(f["cpu_seconds"] for f in runs[e]) for e in runs}
        same = len({f["digest"] for e in runs for f in runs[e]}) == 1
        now = runs["split"][0]
        print(
            f"{policy:<18}{wall[baseline]:>10.1f}{wall['split']:>10.1f}"
            f"{wall['split'] / wall[baseline]:>8.3f}{cpu[baseline]:>14.1f}{cpu['split']:>13.1f}"
            f"{cpu['split'] / cpu[baseline]:>8.3f}{jobs / cpu[baseline]:>15,.0f}"
            f"{jobs / cpu['split']:>12,.0f}{now['waiting_median']:>9,.0f}"
            f"{now['waiting_10k']:>7.0%}{'identical' if same else 'DIFFER':>11}",
            flush=True,
        )


def _row(policy: str, jobs: int, f: dict, peak: float, *, depth: bool = False) -> None:
    """One policy's line; with `depth`, the median number of jobs waiting and the fraction
    of the submit span during which 10,000 or more waited."""
    print(
        f"{policy:<24}{jobs:>10,}{f['seconds']:>9.1f}{f['jobs_per_s']:>9,.0f}{peak:>10,.0f}"
        f"{f['utilisation']:>7.1%}{f['mean_jct_h']:>11.2f}{f['p99_wait_h']:>11.2f}"
        f"{100 * f['max_dev_hour']:>9.2f}{f['preemptions']:>9,}"
        f"{f['lost_accelerator_hours']:>9,.0f}"
        + (f"{f['waiting_median']:>9,.0f}{f['waiting_10k']:>7.0%}" if depth else ""),
        flush=True,
    )


def _controller_one(scenario, variant: str) -> dict:
    from commonlab.simulator.engine import simulate
    from commonlab.simulator.metrics import measure
    from commonlab.simulator.policies import CommonlabPolicy, make_policy

    policy = {
        "fifo": lambda: make_policy("fifo"),
        "multifactor": lambda: make_policy("multifactor"),
        "multifactor-size": lambda: make_policy("multifactor-size"),
        "commonlab": CommonlabPolicy,
        "commonlab+reclaim": lambda: CommonlabPolicy(reclaim=True),
    }[variant]()
    workload = scenario.workload
    entitled = [scenario.entitlements.shares[p] for p in workload.pools]
    began = time.perf_counter()
    outcome = simulate(workload, scenario.parts, scenario.eligible, policy, entitled=entitled)
    seconds = time.perf_counter() - began
    f = measure(workload, outcome, capacity=scenario.capacity, entitled=entitled)
    return {
        "seconds": seconds,
        "util": f["utilisation"],
        "busy": f["utilisation_busy"],
        "jct": f["mean_jct_h"],
        "week": f["share_week"]["max_abs_deviation"],
        "day": f["share_day"]["max_abs_deviation"],
        "hour": f["share_hour"]["max_abs_deviation"],
        "preemptions": f["preemptions"],
        "lost": f["lost_accelerator_hours"],
        "lost_fraction": f["lost_fraction"],
    }


def controller(args: argparse.Namespace) -> None:
    scenario = _study(args)
    print(f"workload: {len(scenario.workload):,} jobs on {scenario.capacity:,} accelerators")
    for line in scenario.workload.how:
        print(f"  {line}")
    print(
        f"{'policy':<20}{'seconds':>8}{'util':>8}{'busy':>8}{'JCT h':>8}{'week pt':>8}"
        f"{'day pt':>8}{'hour pt':>8}{'preempt':>9}{'lost h':>10}{'lost %':>8}"
    )
    for variant in args.variants:
        f, _ = _in_child(_controller_one, scenario, variant)
        print(
            f"{variant:<20}{f['seconds']:>8.0f}{f['util']:>8.2%}{f['busy']:>8.2%}"
            f"{f['jct']:>8.2f}{100 * f['week']:>8.2f}{100 * f['day']:>8.2f}"
            f"{100 * f['hour']:>8.2f}{f['preemptions']:>9,}{f['lost']:>10,.0f}"
            f"{f['lost_fraction']:>8.2%}",
            flush=True,
        )


def fidelity(args: argparse.Namespace) -> None:
    import numpy as np

    fleet = load_fleet(TRACES / "openb_node_list_gpu_node.csv")
    document = load_regulation(ROOT / "examples" / "regulation.json")
    trace = load_trace(TRACES / "openb_pod_list_default.csv")
    scenario = prepare(fleet, document, [trace])
    report = run_policies(scenario, ["fifo"], with_fidelity=True)
    figures = report["policies"]["fifo"]
    fid = figures["fidelity"]
    print(f"original cluster: {fleet.accelerators:,} GPUs; {len(scenario.workload):,} tasks")
    for line in scenario.workload.how:
        print(f"  {line}")
    for reason, count in sorted(scenario.workload.set_aside.items()):
        print(f"  set aside: {count:,} {reason}")
    print(f"{'queueing delay, s':<20}{'recorded':>10}{'simulated':>10}")
    for key in ("median", "p90", "p99", "mean"):
        print(f"{key:<20}{fid[f'recorded_{key}_s']:>10,.0f}{fid[f'simulated_{key}_s']:>10,.0f}")
    print(f"{'under 1 s':<20}{fid['recorded_zero']:>10.1%}{fid['simulated_zero']:>10.1%}")
    print(f"Spearman {fid['spearman']}, Pearson {fid['pearson']}, KS {fid['ks']:.3f}")
    print(
        f"utilisation {figures['utilisation']:.2%}; peak of GPUs in use "
        f"{_peak_in_use(scenario.workload, report):,}"
    )
    # What the recorded delays depend on: the size of the gang, and the tasks' class.
    wait = scenario.workload.recorded_wait
    size = scenario.workload.accelerators
    print("recorded delay by GPUs asked (median / p90 / p99 s):")
    for n in np.unique(size):
        mine = wait[size == n]
        q = np.percentile(mine, [50, 90, 99])
        print(f"  {n} GPU(s), {len(mine):>5} tasks: {q[0]:>6.0f} {q[1]:>7.0f} {q[2]:>8.0f}")

    # Would a smaller cluster explain them? The same tasks on N GPUs (8-GPU nodes, one
    # domain each): how close the simulated delays come as N shrinks toward the peak.
    from commonlab.compute.fleet_spec import FleetSpec

    print("the same tasks on a cluster of N GPUs in 8-GPU nodes (capacity the sample saw):")
    print(f"{'N':>6}{'median':>8}{'p90':>8}{'p99':>9}{'KS':>7}{'Spearman':>10}")
    for gpus in args.sweep:
        small = FleetSpec.model_validate(
            {
                "sites": [{"name": "alibaba", "country": "CN"}],
                "partitions": [
                    {
                        "name": "any",
                        "site": "alibaba",
                        "accelerator": "GPU",
                        "nodes": gpus // 8,
                        "accelerators_per_node": 8,
                        "nodes_per_domain": 1,
                    }
                ],
            }
        )
        f = run_policies(prepare(small, document, [trace]), ["fifo"], with_fidelity=True)
        f = f["policies"]["fifo"]["fidelity"]
        rho = "-" if f["spearman"] is None else f"{f['spearman']:.2f}"
        print(
            f"{gpus:>6}{f['simulated_median_s']:>8,.0f}{f['simulated_p90_s']:>8,.0f}"
            f"{f['simulated_p99_s']:>9,.0f}{f['ks']:>7.2f}{rho:>10}"
        )


def _peak_in_use(workload, report) -> int:
    del report
    import numpy as np

    # Recorded placements: every task from its recorded start for its runtime.
    start = workload.submit + workload.recorded_wait
    times = np.concatenate((start, start + workload.runtime))
    deltas = np.concatenate((workload.accelerators, -workload.accelerators))
    return int(np.cumsum(deltas[np.argsort(times, kind="stable")]).max())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--jobs", type=int, default=1_000_000)
    s.add_argument("--load", type=float, default=0.95)
    s.add_argument(
        "--policies",
        nargs="+",
        default=["fifo", "multifactor", "drf", "commonlab", "multifactor-size"],
    )
    s.add_argument("--baseline-jobs", type=int, default=50_000)
    s.add_argument("--size-scale", type=int, default=1)
    s.add_argument(
        "--compare",
        action="store_true",
        help="time the engine before issue 14's split beside the split one",
    )
    s.add_argument("--repeat", type=int, default=1, help="runs of each engine with --compare")
    c = sub.add_parser("controller")
    c.add_argument("--jobs", type=int, default=1_000_000)
    c.add_argument("--load", type=float, default=1.1)
    c.add_argument("--size-scale", type=int, default=8)
    c.add_argument(
        "--variants",
        nargs="+",
        default=["fifo", "multifactor", "multifactor-size", "commonlab", "commonlab+reclaim"],
    )
    d = sub.add_parser("deep")
    d.add_argument("--jobs", type=int, default=1_000_000)
    d.add_argument("--load", type=float, default=1.3)
    d.add_argument("--seed", type=int, default=19)
    d.add_argument(
        "--window", type=int, default=EngineSettings().backfill_window, help="backfill window"
    )
    d.add_argument(
        "--policies",
        nargs="+",
        default=["fifo", "multifactor", "drf", "commonlab", "multifactor-size"],
    )
    d.add_argument(
        "--compare",
        action="store_true",
        help="time the engine without the --baseline commits beside the package's",
    )
    d.add_argument(
        "--baseline",
        default=",".join(DEEP_COMMITS),
        help="commits (comma-separated, newest first) whose changes to the engine the "
        "baseline undoes (default: issue 19's for deep queues)",
    )
    d.add_argument("--repeat", type=int, default=1, help="runs of each engine with --compare")
    f = sub.add_parser("fidelity")
    f.add_argument("--sweep", type=int, nargs="*", default=[512, 128, 64, 56, 48, 40, 32])
    args = parser.parse_args()
    {"speed": speed, "deep": deep, "controller": controller, "fidelity": fidelity}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
