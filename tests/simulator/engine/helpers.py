"""One engine's parts built by hand, for the tests of each part: a fleet, jobs as dicts
(see tests/simulator/helpers.trace), a policy, and nothing run yet."""

from __future__ import annotations

from commonlab.simulator.engine import EngineSettings, Policy, State
from commonlab.simulator.engine.core import Engine
from commonlab.simulator.inputs import Partition, partitions
from commonlab.simulator.policies import make_policy
from commonlab.simulator.workload import bind_classes, build_workload
from tests.simulator.helpers import fleet, trace

__all__ = ["ONE_BOX", "TWO_DOMAINS", "arrive", "engine", "part"]

# One partition of 4 accelerators in one domain, and one of 2 domains of 4.
ONE_BOX = fleet({"name": "p", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4})
TWO_DOMAINS = fleet(
    {
        "name": "p",
        "accelerator": "H100",
        "nodes": 2,
        "accelerators_per_node": 4,
        "nodes_per_domain": 1,
    }
)


def part(*domains: int, name: str = "p", accelerator: str = "H100") -> Partition:
    return Partition(name, accelerator, tuple(domains))


def engine(
    spec,
    jobs: list[dict],
    policy: str | Policy = "fifo",
    *,
    pools: tuple[str, ...] = ("p",),
    entitled: tuple[float, ...] = (1.0,),
    tenant_pools: dict[str, str] | None = None,
    settings: EngineSettings = EngineSettings(),
) -> Engine:
    """The engine `simulate` would build for these jobs, before any event."""
    parts = partitions(spec)
    workload = build_workload([trace(jobs)], pools=list(pools), tenant_pools=tenant_pools)
    workload, eligible = bind_classes(workload, parts)
    state = State(workload, parts, eligible, entitled)
    chosen = make_policy(policy) if isinstance(policy, str) else policy
    keys = chosen.bind(state)
    return Engine(workload, parts, eligible, chosen, state, keys, settings)


def arrive(e: Engine, *runs: int) -> None:
    """Queue these jobs as their arrival would."""
    for j in runs:
        e.runs.queued(j)
        e.queues.arrive(j, e.runs.key[j])
