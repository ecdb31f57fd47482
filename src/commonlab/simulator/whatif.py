"""The council's what-if, client side: build one workload for a motion — the facility's own
jobs of the last quarter replayed as they were (`replay`), or a published trace shaped to the
fleet (`compare`) — run it under the regulation in force and the proposed one
(`run.compare_regulations`), and reduce the two reports to what a motion carries
(`schemas.WhatIfCreate`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import RegulationDocument, entitlements, partitions
from commonlab.simulator.run import compare_regulations
from commonlab.simulator.schemas import window_days
from commonlab.simulator.traces import NO_ACCELERATORS, ZERO_RUNTIME, Trace
from commonlab.simulator.workload import Workload, bind_classes, build_workload

__all__ = [
    "EXPORT",
    "MIN_FACILITY_JOBS",
    "OwnJobs",
    "compare",
    "own_jobs",
    "pick_workload",
    "replay",
    "summarise",
]

_MAX_LINES, _MAX_LINE = 40, 1000
# Fewer replayable jobs than this in the window and a what-if falls back to a published
# trace: a facility that has run nothing yet has no workload of its own to replay.
MIN_FACILITY_JOBS = 1
WorkloadChoice = Literal["auto", "facility", "trace"]
EXPORT = "/api/v1/reports/workload"


@dataclass
class OwnJobs:
    """The facility's own jobs of a window (`GET /api/v1/reports/workload?format=ndjson`): the
    ones that ran as a trace, the pool each tenant draws on, and what the window held."""

    trace: Trace
    tenant_pools: dict[str, str]
    start: datetime
    end: datetime
    jobs: int  # every job submitted in the window, replayable or not
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def window(self) -> str:
        """The days of the window, both included (the export's end is the day after)."""
        return window_days(self.start, self.end)


def own_jobs(lines: Iterable[str | bytes]) -> OwnJobs:
    """The export's JSON lines (`GET /api/v1/reports/workload?format=ndjson`) read as they
    come, as a trace: each job that ran, at its submit time (seconds from the window's
    start) with its recorded runtime and wait. Jobs the export could not give a runtime are
    counted as it counted them; the rules for the rest are the plain CSV's. An export
    without its closing totals was cut short, and is refused rather than replayed in part."""
    trace = Trace(name="the facility's jobs", path=Path(EXPORT), kind="facility")
    pools: dict[str, str] = {}
    window: Mapping[str, Any] | None = None
    totals: Mapping[str, Any] | None = None
    try:
        for line, text in enumerate(lines, start=1):
            entry = json.loads(text)
            if window is None:
                window = entry["window"]
            elif "job" in entry and totals is None:
                _add_job(trace, pools, entry["job"], line=line)
            elif "totals" in entry and totals is None:
                totals = entry["totals"]
            else:
                raise ValueError(f"line {line} is neither a job nor the totals")
        if window is None or totals is None:
            raise InvalidInput(
                "the facility's workload export ended before its totals: it was cut short "
                "(a dropped connection, or the facility stopped); run the what-if again"
            )
        return OwnJobs(
            trace=trace,
            tenant_pools=pools,
            start=datetime.fromisoformat(window["from"]),
            end=datetime.fromisoformat(window["to"]),
            jobs=int(totals["jobs"]),
            left_out=Counter({str(k): int(v) for k, v in totals["left_out"].items()}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(
            f"the facility's workload export is not one this client reads ({exc!r}): "
            "update commonlab, or pass --workload trace with --trace"
        ) from None


def _add_job(trace: Trace, pools: dict[str, str], row: Mapping[str, Any], *, line: int) -> None:
    if row["runtime"] is None:
        return
    tenant, pool = str(row["tenant"]), str(row["pool"])
    if pools.setdefault(tenant, pool) != pool:
        raise InvalidInput(f"the facility's export gives tenant {tenant} two pools")
    if int(row["accelerators"]) <= 0:
        trace.set_aside[NO_ACCELERATORS] += 1
    elif float(row["runtime"]) <= 0:
        trace.set_aside[ZERO_RUNTIME] += 1
    else:
        trace.add(
            submit=float(row["submit"]),
            runtime=float(row["runtime"]),
            accelerators=int(row["accelerators"]),
            tenant=tenant,
            classes=(str(row["class"]),) if row["class"] else (),
            recorded_wait=float("nan") if row["wait"] is None else float(row["wait"]),
            line=line,
        )


def pick_workload(
    choice: WorkloadChoice, own: OwnJobs | None, traces: Sequence[str]
) -> tuple[Literal["facility", "trace"], str | None]:
    """Which workload a what-if replays, and the line that says why when it is not the one
    asked for. `auto`: the facility's own jobs, else the published traces given."""
    if choice == "trace":
        if not traces:
            raise InvalidInput("--workload trace needs a published trace: pass --trace FILE")
        return "trace", None
    if own is None:
        raise InvalidInput("the facility's own jobs were not read: pass --workload trace")
    ran = len(own.trace)
    if ran >= MIN_FACILITY_JOBS:
        return "facility", None
    why = f"the facility's jobs of {own.window} hold {ran} that ran (of {own.jobs} submitted)"
    if choice == "facility" or not traces:
        raise InvalidInput(
            f"{why}: nothing of its own to replay; pass --trace FILE (a published trace, e.g. "
            "the plain CSV of docs/simulator.md) to simulate the motion on"
        )
    return "trace", f"{why}: replaying the published trace(s) {', '.join(traces)} instead"


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
    pools, dropped = _shared_pools(in_force, proposed)
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
    if dropped:
        workload.how.append(
            f"pool(s) {', '.join(dropped)} have a share under only one of the two regulations: "
            "the workload is dealt to the pools both share"
        )
    return _compare(workload, fleet, in_force, proposed, policy), pools


def replay(
    fleet: FleetSpec,
    in_force: RegulationDocument,
    proposed: RegulationDocument,
    own: OwnJobs,
    *,
    policy: str,
) -> tuple[dict[str, Any], list[str]]:
    """The facility's own jobs under both regulations, as they were: each job in the pool its
    project draws on, at its recorded submit time, for its recorded runtime (no stacking, no
    dealing, no cut, no arrival-rate scaling). A job whose pool only one regulation (or
    neither) gives a share is set aside and counted: there is no share to measure it by."""
    pools, dropped = _shared_pools(in_force, proposed)
    kept = _in_pools(own, set(pools))
    if not len(kept):
        raise InvalidInput(
            f"none of the {len(own.trace)} jobs of {own.window} that ran draws on a pool both "
            f"regulations give a share ({', '.join(pools)}): pass --workload trace --trace FILE"
        )
    workload = build_workload(
        [kept],
        pools=pools,
        tenant_pools={t: p for t, p in own.tenant_pools.items() if p in pools},
        mapped_as="by the facility (each job's project's pool)",
    )
    workload.how.insert(
        0,
        f"replays the facility's own jobs submitted {own.window} (UTC days): {len(kept):,} "
        "jobs that ran, each in the pool its "
        "project draws on, at their recorded submit times and runtimes (no stacking, no "
        "dealing, no runtime cut, no arrival-rate scaling); a job still running counts what "
        "it had run when exported",
    )
    workload.set_aside.update(own.left_out)
    if dropped:
        workload.how.append(
            f"pool(s) {', '.join(dropped)} have a share under only one of the two regulations"
        )
    return _compare(workload, fleet, in_force, proposed, policy), pools


def _shared_pools(
    in_force: RegulationDocument, proposed: RegulationDocument
) -> tuple[list[str], list[str]]:
    """The pools both regulations give a share, and those only one of them does."""
    before, after = entitlements(in_force), entitlements(proposed)
    shared = [p for p in before.pools if p in after.shares]
    return shared, sorted(set(before.pools) ^ set(after.pools))


def _in_pools(own: OwnJobs, pools: set[str]) -> Trace:
    """The jobs of `own` whose pool is one of `pools`; the others counted in `set_aside`."""
    source = own.trace
    kept = Trace(name=source.name, path=source.path, kind=source.kind)
    kept.set_aside.update(source.set_aside)
    for i, tenant in enumerate(source.tenant):
        pool = own.tenant_pools[tenant]
        if pool not in pools:
            kept.set_aside[f"draws on pool {pool}, which both regulations do not share"] += 1
            continue
        kept.add(
            submit=source.submit[i],
            runtime=source.runtime[i],
            accelerators=source.accelerators[i],
            tenant=tenant,
            classes=source.classes[i],
            one_domain=source.one_domain[i],
            recorded_wait=source.recorded_wait[i],
            line=source.line[i],
        )
    return kept


def _compare(
    workload: Workload,
    fleet: FleetSpec,
    in_force: RegulationDocument,
    proposed: RegulationDocument,
    policy: str,
) -> dict[str, Any]:
    workload, _ = bind_classes(workload, partitions(fleet))
    if not len(workload):
        raise InvalidInput("no job of the workload fits the fleet (see what was set aside)")
    return compare_regulations(workload, fleet, in_force, proposed, policy)


def summarise(
    comparison: dict[str, Any],
    *,
    pools: Sequence[str],
    traces: Sequence[str],
    in_force: dict[str, Any],
    proposed: dict[str, Any],
    scale: dict[str, str],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of POST /api/v1/motions/{id}/simulations. `in_force` and `proposed` name
    each regulation: `{"title", "sha256", "version"}` (no version for the proposal);
    `source` which workload was replayed (`schemas.WorkloadSource`, by its JSON names)."""
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
    how = [*workload["how"], *(f"warning: {w}" for w in workload.get("warnings", []))]
    return {
        "policy": policy,
        "workload": {
            "traces": [t[:_MAX_LINE] for t in traces][:20],
            "jobs": workload["jobs"],
            "accelerators_requested": workload["accelerators_requested"],
            "submission_hours": workload["submission_hours"],
            "fleet_accelerators": report["fleet"]["accelerators"],
            "how": [line[:_MAX_LINE] for line in how][:_MAX_LINES],
            "set_aside": dict(sorted(workload["set_aside"].items())[:20]),
            "contribution_scale": scale,
            **({"source": source} if source is not None else {}),
        },
        "in_force": side("in_force", in_force),
        "proposed": side("proposed", proposed),
    }


def _fraction(value: float) -> float:
    # Sums of float shares can land a hair outside [0, 1].
    return min(max(float(value), 0.0), 1.0)
