"""The council's what-if, client side: build one workload for a motion, run it under the
regulation in force and the proposed one (`run.compare_regulations`), and reduce the two
reports to what a motion carries (`schemas.WhatIfIn`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import RegulationDocument, entitlements, partitions
from commonlab.simulator.run import compare_regulations
from commonlab.simulator.traces import Trace
from commonlab.simulator.workload import bind_classes, build_workload

__all__ = ["compare", "summarise"]

_MAX_LINES, _MAX_LINE = 40, 1000


def compare(
    fleet: FleetSpec,
    in_force: RegulationDocument,
    proposed: RegulationDocument,
    traces: Sequence[Trace],
    *,
    policy: str,
    jobs: int | None = None,
    load: float | None = None,
    max_runtime: float | None = None,
    scale_to: int | None = None,
    size_scale: int = 1,
) -> tuple[dict[str, Any], list[str]]:
    """The comparison and the pools its workload uses: those both regulations give a share
    (a pool the proposal closes has no share to measure against, so its work is dealt to
    the others, and the report says so)."""
    before, after = entitlements(in_force), entitlements(proposed)
    pools = [p for p in before.pools if p in after.shares]
    parts = partitions(fleet)
    workload = build_workload(
        traces,
        pools=pools,
        jobs=jobs,
        load=load,
        accelerators=scale_to or sum(p.size for p in parts),
        max_runtime=max_runtime,
        size_scale=size_scale,
    )
    dropped = sorted(set(before.pools) ^ set(after.pools))
    if dropped:
        workload.how.append(
            f"pool(s) {', '.join(dropped)} have a share under only one of the two regulations: "
            "the workload is dealt to the pools both share"
        )
    workload, _ = bind_classes(workload, parts)
    if not len(workload):
        raise InvalidInput("no job of the traces fits the fleet (see what was set aside)")
    return compare_regulations(workload, fleet, in_force, proposed, policy), pools


def summarise(
    comparison: dict[str, Any],
    *,
    pools: Sequence[str],
    traces: Sequence[str],
    in_force: dict[str, Any],
    proposed: dict[str, Any],
    scale: dict[str, str],
) -> dict[str, Any]:
    """The body of POST /api/v1/motions/{id}/simulations. `in_force` and `proposed` name
    each regulation: `{"title", "sha256", "version"}` (no version for the proposal)."""
    policy = comparison["policy"]

    def side(label: str, regulation: dict[str, Any]) -> dict[str, Any]:
        f = comparison[label]["policies"][policy]
        hourly = f["share_hour"]
        return {
            "regulation": regulation,
            "figures": {
                "utilisation": _fraction(f["utilisation"]),
                "idle_while_waiting_fraction": _fraction(f["idle_while_waiting_fraction"]),
                "mean_jct_h": f["mean_jct_h"],
                "p99_jct_h": f["p99_jct_h"],
                "mean_wait_h": f["mean_wait_h"],
                "p99_wait_h": f["p99_wait_h"],
                "makespan_days": f["makespan_days"],
                "max_shortfall_hour": _fraction(hourly["max_shortfall"]),
                "jain_hour": _fraction(hourly["jain"]),
                "pools": {
                    pool: {
                        "entitled": _fraction(f["per_pool"][pool]["entitled"]),
                        "jobs": f["per_pool"][pool]["jobs"],
                        "mean_wait_h": f["per_pool"][pool]["mean_wait_h"],
                        "p99_wait_h": f["per_pool"][pool]["p99_wait_h"],
                        "delivered": _fraction(f["per_pool"][pool]["delivered"]),
                        "max_abs_deviation_hour": _fraction(
                            hourly["pools"][pool]["max_raw_deviation"]
                        ),
                    }
                    for pool in pools
                },
            },
        }

    report = comparison["in_force"]
    workload = report["workload"]
    return {
        "policy": policy,
        "workload": {
            "traces": [t[:_MAX_LINE] for t in traces][:20],
            "jobs": workload["jobs"],
            "accelerators_requested": workload["accelerators_requested"],
            "submission_hours": workload["submission_hours"],
            "fleet_accelerators": report["fleet"]["accelerators"],
            "how": [line[:_MAX_LINE] for line in workload["how"]][:_MAX_LINES],
            "set_aside": dict(sorted(workload["set_aside"].items())[:20]),
            "contribution_scale": scale,
        },
        "in_force": side("in_force", in_force),
        "proposed": side("proposed", proposed),
    }


def _fraction(value: float) -> float:
    # Sums of float shares can land a hair outside [0, 1].
    return min(max(float(value), 0.0), 1.0)
