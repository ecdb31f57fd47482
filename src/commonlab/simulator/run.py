"""One simulation study: read the fleet, the regulation and the traces, build the workload,
run each policy on it and gather the figures; and the council's what-if, the same workload
under the regulation in force and a proposed one."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.errors import InvalidInput
from commonlab.simulator.engine import EngineSettings, simulate
from commonlab.simulator.inputs import (
    Entitlements,
    Partition,
    RegulationDocument,
    entitlements,
    partitions,
)
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.metrics import check_targets, fidelity, measure, pool_demand
from commonlab.simulator.policies import make_policy
from commonlab.simulator.traces import Trace
from commonlab.simulator.workload import Workload, bind_classes, build_workload

__all__ = ["Scenario", "compare_regulations", "prepare", "run_policies"]

Progress = Callable[[str, int, int], None]


@dataclass
class Scenario:
    """A workload bound to a fleet and to the entitlements of one regulation."""

    workload: Workload
    parts: list[Partition]
    eligible: list[tuple[int, ...]]
    entitlements: Entitlements
    regulation: str = ""  # its title, for the report and the charts

    @property
    def capacity(self) -> int:
        return sum(p.size for p in self.parts)


def prepare(
    fleet: FleetSpec,
    document: RegulationDocument,
    traces: Sequence[Trace],
    *,
    jobs: int | None = None,
    load: float | None = None,
    max_runtime: float | None = None,
    scale_to: int | None = None,
    size_scale: int = 1,
    pool_map: PoolMap | None = None,
) -> Scenario:
    """Build the workload for `fleet` under `document`; `load` is relative to `scale_to`
    accelerators when given (a workload for a fleet of that size), else to the fleet's;
    `pool_map` gives each tenant's pool (else pools are dealt round-robin, with a warning)."""
    parts = partitions(fleet)
    shares = entitlements(document)
    capacity = sum(p.size for p in parts)
    workload = build_workload(
        traces,
        pools=shares.pools,
        jobs=jobs,
        load=load,
        accelerators=scale_to or capacity,
        max_runtime=max_runtime,
        size_scale=size_scale,
        pool_map=pool_map,
    )
    workload, eligible = bind_classes(workload, parts)
    if not len(workload):
        raise InvalidInput("no job of the traces fits the fleet (see what was set aside)")
    return Scenario(workload, parts, eligible, shares, document.regulation.title)


def run_policies(
    scenario: Scenario,
    policies: Sequence[str],
    *,
    progress: Progress | None = None,
    settings: EngineSettings = EngineSettings(),
    with_fidelity: bool = False,
    trace_memory: bool = False,
) -> dict[str, Any]:
    """Run every policy on the same workload; returns the JSON report."""
    if not policies:
        raise InvalidInput("name at least one --policy")
    workload = scenario.workload
    if with_fidelity:
        _check_recorded_waits(workload)
    entitled = [scenario.entitlements.shares[p] for p in workload.pools]
    results: dict[str, Any] = {}
    for name in policies:
        policy = make_policy(name)

        def tick(done: int, name: str = name) -> None:
            if progress:
                progress(name, done, len(workload))

        if trace_memory:
            tracemalloc.start()
        began = time.perf_counter()
        outcome = simulate(
            workload,
            scenario.parts,
            scenario.eligible,
            policy,
            entitled=entitled,
            settings=settings,
            progress=tick,
        )
        seconds = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else None
        if trace_memory:
            tracemalloc.stop()
        figures = measure(workload, outcome, capacity=scenario.capacity, entitled=entitled)
        figures["seconds"] = seconds
        figures["jobs_per_s"] = len(workload) / seconds if seconds else 0.0
        if peak is not None:
            figures["peak_traced_mib"] = peak / 2**20
        if with_fidelity:
            figures["fidelity"] = fidelity(workload, outcome)
        history = getattr(policy, "history", None)
        if history:
            figures["controller_weights"] = {
                "hours": [t / 3600 for t, _ in history],
                "pools": {
                    pool: [w[i] for _, w in history] for i, pool in enumerate(workload.pools)
                },
            }
        results[name] = figures
    return {
        "workload": {
            "jobs": len(workload),
            "accelerators_requested": int(workload.accelerators.sum()),
            "submission_hours": float(workload.submit[-1] / 3600),
            "how": workload.how,
            "warnings": workload.warnings,
            "set_aside": dict(workload.set_aside),
            "tenants": len(workload.tenants),
            "traces": [Path(source).name for source in workload.sources],
            "offered_load": workload.offered_load,
            "pools": pool_demand(workload, entitled),
        },
        "regulation": scenario.regulation,
        "fleet": {
            "accelerators": scenario.capacity,
            "partitions": {
                p.name: {
                    "class": p.accelerator,
                    "accelerators": p.size,
                    "domains": len(p.domain_sizes),
                }
                for p in scenario.parts
            },
        },
        "entitlements": scenario.entitlements.shares,
        "tolerance": scenario.entitlements.tolerance,
        "engine": {
            "main_depth": settings.main_depth,
            "backfill_interval_s": settings.backfill_interval,
            "backfill_window": settings.backfill_window,
        },
        "policies": results,
        "targets": check_targets(results, tolerance=scenario.entitlements.tolerance),
    }


def _check_recorded_waits(workload: Workload) -> None:
    """Fidelity compares with recorded waits: a workload without them cannot be checked."""
    recorded = int(np.count_nonzero(~np.isnan(workload.recorded_wait)))
    if recorded < 2:
        traces = ", ".join(Path(source).name for source in workload.sources)
        raise InvalidInput(
            f"--fidelity: {traces} record{'s' if len(workload.sources) == 1 else ''} "
            f"{'no' if recorded == 0 else 'only one'} queueing wait (a wait column, sacct's "
            "Start and Submit, Alibaba's scheduled_time): drop --fidelity or give a trace "
            "with recorded waits"
        )


def compare_regulations(
    workload: Workload,
    fleet: FleetSpec,
    in_force: RegulationDocument,
    proposed: RegulationDocument,
    policy: str,
) -> dict[str, Any]:
    """The same workload under the regulation in force and a proposed one, for a motion's
    page. The workload's pools are matched by name; a pool the proposal removes is an error
    (map its tenants elsewhere first)."""
    parts = partitions(fleet)
    report: dict[str, Any] = {"policy": policy}
    for label, document in (("in_force", in_force), ("proposed", proposed)):
        shares = entitlements(document)
        missing = sorted(set(workload.pools) - set(shares.pools))
        if missing:
            raise InvalidInput(
                f"the {label.replace('_', ' ')} regulation gives no share to pool(s) "
                f"{', '.join(missing)} that the workload uses"
            )
        index = {pool: i for i, pool in enumerate(shares.pools)}
        remap = np.array([index[p] for p in workload.pools], dtype=np.int32)
        rebound = workload.select(np.ones(len(workload), dtype=bool))
        rebound.pool = remap[workload.pool]
        rebound.pools = list(shares.pools)
        rebound, eligible = bind_classes(rebound, parts)
        scenario = Scenario(rebound, parts, eligible, shares, document.regulation.title)
        report[label] = run_policies(scenario, [policy])
    return report
