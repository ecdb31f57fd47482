"""Small hand-built fleets and workloads for the simulator tests."""

from __future__ import annotations

from pathlib import Path

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.simulator.engine import EngineSettings, Outcome, Policy, simulate
from commonlab.simulator.inputs import partitions
from commonlab.simulator.policies import make_policy
from commonlab.simulator.traces import Trace
from commonlab.simulator.workload import Workload, bind_classes, build_workload


def fleet(*parts: dict) -> FleetSpec:
    return FleetSpec.model_validate(
        {
            "sites": [{"name": "here", "country": "CH"}],
            "partitions": [{"site": "here", **p} for p in parts],
        }
    )


def trace(jobs: list[dict], name: str = "t") -> Trace:
    """jobs: dicts with submit, runtime, size and optional tenant, classes, one_domain."""
    result = Trace(name=name, path=Path(f"{name}.csv"), kind="csv")
    for line, job in enumerate(jobs, start=2):
        result.add(
            submit=job["submit"],
            runtime=job["runtime"],
            accelerators=job["size"],
            tenant=job.get("tenant", "a"),
            classes=tuple(job.get("classes", ())),
            one_domain=job.get("one_domain", False),
            recorded_wait=job.get("wait", float("nan")),
            line=line,
        )
    return result


def run(
    spec: FleetSpec,
    jobs: list[dict],
    policy: str | Policy = "fifo",
    *,
    pools: tuple[str, ...] = ("p",),
    entitled: tuple[float, ...] = (1.0,),
    tenant_pools: dict[str, str] | None = None,
    settings: EngineSettings = EngineSettings(),
) -> tuple[Workload, Outcome, list[str]]:
    parts = partitions(spec)
    workload = build_workload([trace(jobs)], pools=list(pools), tenant_pools=tenant_pools)
    workload, eligible = bind_classes(workload, parts)
    outcome = simulate(
        workload,
        parts,
        eligible,
        make_policy(policy) if isinstance(policy, str) else policy,
        entitled=list(entitled),
        settings=settings,
    )
    return workload, outcome, [p.name for p in parts]
