"""A workload: jobs from one or more traces, each tenant mapped to a pool (a member state or
another pool of the regulation), stacked and time-scaled to fill a facility. `Workload.how`
says exactly how it was built, and `Workload.warnings` what of that changes the question the
run answers (a cut, demand dealt by file order, an overload), with numbers, for the report."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import Partition
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.traces import Trace

__all__ = ["Workload", "bind_classes", "build_workload"]

# Copies of a trace are shifted in time by multiples of this fraction of its span (mod the
# span): irrational, so no two copies line up and their bursts spread out.
_SHIFT = (math.sqrt(5) - 1) / 2
HOUR, DAY = 3_600.0, 86_400.0


@dataclass
class Workload:
    """Jobs sorted by submit time, as numpy columns; tenants and pools by index."""

    submit: np.ndarray  # float64 seconds from the first submission
    runtime: np.ndarray  # float64 seconds
    accelerators: np.ndarray  # int64
    tenant: np.ndarray  # int32 index into tenants
    pool: np.ndarray  # int32 index into pools
    class_set: np.ndarray  # int32 index into class_sets; 0 is "any class"
    one_domain: np.ndarray  # bool
    recorded_wait: np.ndarray  # float64, NaN where the trace has none
    origin: np.ndarray  # int64: trace index * 2**32 + line, to name a job's source line
    tenants: list[str]
    pools: list[str]
    class_sets: list[tuple[str, ...]]
    sources: list[str]
    set_aside: Counter[str] = field(default_factory=Counter)
    how: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The work offered over the submission window, as a multiple of the capacity it was
    # built for (None when built without a number of accelerators).
    offered_load: float | None = None

    def __len__(self) -> int:
        return len(self.submit)

    def where(self, index: int) -> str:
        trace, line = divmod(int(self.origin[index]), 2**32)
        return f"{self.sources[trace]} line {line}"

    def select(self, keep: np.ndarray) -> Workload:
        """The jobs where `keep` is true, in the same order."""
        columns = {
            name: getattr(self, name)[keep]
            for name in (
                "submit",
                "runtime",
                "accelerators",
                "tenant",
                "pool",
                "class_set",
                "one_domain",
                "recorded_wait",
                "origin",
            )
        }
        return Workload(
            **columns,
            tenants=self.tenants,
            pools=self.pools,
            class_sets=self.class_sets,
            sources=self.sources,
            set_aside=Counter(self.set_aside),
            how=list(self.how),
            warnings=list(self.warnings),
            offered_load=self.offered_load,
        )


def build_workload(
    traces: Sequence[Trace],
    *,
    pools: Sequence[str],
    jobs: int | None = None,
    load: float | None = None,
    accelerators: int | None = None,
    max_runtime: float | None = None,
    tenant_pools: Mapping[str, str] | None = None,
    size_scale: int = 1,
    pool_map: PoolMap | None = None,
    mapped_as: str = "as the operator said",
) -> Workload:
    """Stack `traces` into one workload for pools `pools`.

    - `jobs`: stack enough copies of the traces to reach this many jobs (then keep the
      first `jobs` by submit time). Copy k of a trace is shifted by k * 0.618 of its span,
      modulo the span, so copies do not burst together.
    - `load`: compress or stretch all submit times so that the offered work (accelerator-
      seconds) over the submit span is `load` times the facility's `accelerators`.
    - `max_runtime`: cut longer jobs to this many seconds, as a facility's maximum job time
      would (long jobs checkpoint and resubmit); applied before `load` is computed.
    - `size_scale`: multiply every job's accelerators by this factor (8: each GPU of the
      trace becomes one 8-accelerator node, so a one-node task becomes a one-domain job of
      up to 8 nodes); applied before `load` is computed.
    - Pools: `pool_map` (or `tenant_pools`, exact tenant names) gives each tenant's pool;
      a tenant it leaves unmapped is an error. Without a map each (trace, copy) is a
      cluster dealt to the pools round-robin (when there are fewer clusters than pools, each
      cluster's tenants are dealt instead, in order), and a warning says so. `mapped_as`
      says in the report who mapped them.
    """
    if not traces:
        raise InvalidInput("no trace given: pass at least one --trace")
    if not pools:
        raise InvalidInput("no pools: the regulation gives no pool a share")
    base = sum(len(t) for t in traces)
    if base == 0:
        raise InvalidInput("the traces hold no job that can run (see what was set aside)")
    if jobs is not None and jobs < 1:
        raise InvalidInput(f"--jobs must be at least 1, not {jobs}")
    if size_scale < 1:
        raise InvalidInput(f"--size-scale must be at least 1, not {size_scale}")
    copies = max(1, math.ceil(jobs / base)) if jobs else 1
    pool_index = {p: i for i, p in enumerate(pools)}
    mapping = (pool_map or PoolMap.of(dict(tenant_pools or {}))).checked(list(pools))
    mapped_by: Counter[str] = Counter()

    clusters = [(t, c) for t in range(len(traces)) for c in range(copies)]
    deal_clusters = len(clusters) >= len(pools)
    dealt = 0

    tenants: list[str] = []
    tenant_ids: dict[str, int] = {}
    class_sets: list[tuple[str, ...]] = [()]
    class_ids: dict[tuple[str, ...], int] = {(): 0}
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "submit",
            "runtime",
            "accelerators",
            "tenant",
            "pool",
            "class_set",
            "one_domain",
            "recorded_wait",
            "origin",
        )
    }
    for cluster, (t, copy) in enumerate(clusters):
        trace = traces[t]
        if not len(trace):
            continue
        submit = np.asarray(trace.submit, dtype=np.float64)
        submit = submit - submit.min()
        span = float(submit.max()) + 1.0
        if copy:
            submit = (submit + (copy * _SHIFT % 1.0) * span) % span
        label = f"{trace.name}#{copy}" if copies > 1 else trace.name
        local_tenant = np.empty(len(trace), dtype=np.int32)
        local_pool = np.empty(len(trace), dtype=np.int32)
        names = {}
        for name in sorted(set(trace.tenant)):
            full = f"{label}/{name}"
            names[name] = tenant_ids.setdefault(full, len(tenant_ids))
            if names[name] == len(tenants):
                tenants.append(full)
        pool_of = {}
        for name in sorted(names):
            if mapping:
                pool, how_mapped = _mapped_pool(mapping, trace, name)
                pool_of[name] = pool_index[pool]
                mapped_by[how_mapped] += copy == 0
            elif deal_clusters:
                pool_of[name] = cluster % len(pools)
            else:
                pool_of[name] = dealt % len(pools)
                dealt += 1
        for i, name in enumerate(trace.tenant):
            local_tenant[i] = names[name]
            local_pool[i] = pool_of[name]
        local_class = np.empty(len(trace), dtype=np.int32)
        for i, classes in enumerate(trace.classes):
            local_class[i] = class_ids.setdefault(classes, len(class_ids))
            if local_class[i] == len(class_sets):
                class_sets.append(classes)
        parts["submit"].append(submit)
        parts["runtime"].append(np.asarray(trace.runtime, dtype=np.float64))
        parts["accelerators"].append(np.asarray(trace.accelerators, dtype=np.int64))
        parts["tenant"].append(local_tenant)
        parts["pool"].append(local_pool)
        parts["class_set"].append(local_class)
        parts["one_domain"].append(np.asarray(trace.one_domain, dtype=bool))
        parts["recorded_wait"].append(np.asarray(trace.recorded_wait, dtype=np.float64))
        parts["origin"].append(t * 2**32 + np.asarray(trace.line, dtype=np.int64))

    columns = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(columns["submit"], kind="stable")
    if jobs:
        order = order[:jobs]
    columns = {k: v[order] for k, v in columns.items()}
    columns["submit"] = columns["submit"] - columns["submit"][0]

    how = [
        f"{t.name} ({t.kind}, {t.path}): {len(t)} jobs"
        + (
            f" from a cluster of {t.source_accelerators} accelerators"
            if t.source_accelerators
            else ""
        )
        + "".join(f"; {note}" for note in t.notes)
        for t in traces
    ]
    if copies > 1:
        how.append(
            f"stacked {copies} copies of each trace, copy k shifted by k x 0.618 of its span "
            f"(mod span); kept the first {len(order):,} jobs by submit time"
        )
    warnings: list[str] = []
    if mapping:
        how.append(
            f"tenants mapped to pools {mapped_as}: "
            + ", ".join(f"{n} {what}" for what, n in sorted(mapped_by.items()))
        )
    else:
        dealt_what = (
            f"each (trace, copy) is one cluster; {len(clusters)} clusters dealt round-robin "
            f"to {len(pools)} pools"
            if deal_clusters
            else f"{len(clusters)} cluster(s) for {len(pools)} pools: {dealt} (cluster, "
            "tenant) pairs dealt round-robin (tenants by name) to the pools"
        )
        how.append(dealt_what)
        if len(pools) > 1:
            stacked = " and stacked copies give every pool about the same demand"
            warnings.append(
                "no --map, --map-file or --trace-pool: pools dealt round-robin by file order, "
                "so each pool's demand is an accident of ordering"
                + (stacked if copies > 1 else "")
                + f": {_demand_spread(columns, len(pools))}"
            )
    idle = [p for i, p in enumerate(pools) if not np.any(columns["pool"] == i)]
    if idle:
        warnings.append(
            f"pool(s) {', '.join(idle)} get no work from this workload: they never wait, so "
            "their shares are not tested"
        )
    if size_scale > 1:
        columns["accelerators"] = columns["accelerators"] * size_scale
        how.append(
            f"job sizes x {size_scale} (a job of n accelerators in the trace asks for "
            f"{size_scale}n; a one-node task stays inside one interconnect domain)"
        )
    if max_runtime:
        how.append(_cut_runtimes(columns, max_runtime, warnings))
    if load is not None:
        if not accelerators or load <= 0:
            raise InvalidInput("--load needs a positive load and a fleet with accelerators")
        factor, reached = _rate_factor(columns, load=load, accelerators=accelerators)
        if reached < load / 2:
            # Even submitted all at once the jobs cannot keep the fleet half as busy as asked:
            # such a run measures an idle facility and says nothing about the question.
            enough = int(len(columns["submit"]) * load / max(reached, 1e-12)) + 1
            raise InvalidInput(
                f"{len(columns['submit']):,} jobs cannot offer a load of {load:g} on "
                f"{accelerators:,} accelerators (at most {reached:.2f}, even all submitted at "
                f"once): give --jobs {enough:,} or more, or a smaller fleet"
            )
        columns["submit"] = columns["submit"] * factor
        window = float(columns["submit"][-1])
        offered: float | None = reached
        how.append(
            f"submit times scaled by {factor:.4g} (arrival rate x {1 / factor:.4g}): over the "
            f"{window / 3600:.1f} h of submissions the work that fits in that window is "
            f"{reached:.2f} x the capacity of {accelerators:,} accelerators"
            + (
                ""
                if abs(reached - load) < 0.01
                else f" (asked for {load:g}: the jobs are too few to offer more)"
            )
        )
    else:
        how.append("submit times as recorded (no arrival-rate scaling)")
        window = float(columns["submit"][-1])
        offered = _offered_load(columns, 1.0, accelerators) if accelerators else None
    if offered is not None and offered > 1.005:
        warnings.append(_overload(offered, window, accelerators or 0))
    set_aside: Counter[str] = Counter()
    for trace in traces:
        set_aside.update({reason: n * copies for reason, n in trace.set_aside.items()})
    return Workload(
        **columns,
        tenants=tenants,
        pools=list(pools),
        class_sets=class_sets,
        sources=[str(t.path) for t in traces],
        set_aside=set_aside,
        how=how,
        warnings=warnings,
        offered_load=offered,
    )


def _cut_runtimes(columns: dict[str, np.ndarray], max_runtime: float, warnings: list[str]) -> str:
    """Cut runtimes to `max_runtime` in place; returns the how-line, and adds a warning with
    the work removed when the cut shortened any job."""
    runtime, acc = columns["runtime"], columns["accelerators"]
    cut = runtime > max_runtime
    asked = float(np.dot(acc, runtime))
    removed = float(np.dot(acc[cut], runtime[cut] - max_runtime))
    columns["runtime"] = np.minimum(runtime, max_runtime)
    if cut.any():
        warnings.append(
            f"the {max_runtime / HOUR:g} h runtime cut shortened {int(cut.sum()):,} jobs "
            f"({cut.mean():.1%} of the jobs) and removed {removed / HOUR:,.0f} "
            f"accelerator-hours ({removed / asked:.1%} of the work asked): "
            "--max-runtime-h 0 keeps every job whole"
        )
    return (
        f"runtimes cut to at most {max_runtime / HOUR:g} h (maximum job time): "
        f"{int(cut.sum()):,} jobs cut"
    )


def _mapped_pool(mapping: PoolMap, trace: Trace, tenant: str) -> tuple[str, str]:
    """The pool of `tenant` of `trace` under the operator's map, and how it was chosen."""
    whole = mapping.file_pool(trace.path)
    rule = mapping.tenant_rule(tenant)
    if whole and rule and rule.pattern != "*" and rule.pool != whole.pool:
        raise InvalidInput(
            f"tenant {tenant!r} of {trace.path} is mapped twice: to {whole.pool} with its file "
            f"({whole.source}) and to {rule.pool} ({rule.source})"
        )
    if whole:
        return whole.pool, "by trace file"
    if rule is None:
        raise InvalidInput(
            f"tenant {tenant!r} of {trace.path} is in no line of the map: map it, its file "
            "(--trace-pool), or add a default (--map '*=POOL')"
        )
    if rule.pattern == "*":
        return rule.pool, "by the * default"
    return rule.pool, "by name" if rule.exact else "by pattern"


def _demand_spread(columns: dict[str, np.ndarray], pools: int) -> str:
    """Each pool's share of the accelerator-time asked, smallest to largest, in words."""
    work = columns["accelerators"] * columns["runtime"]
    per_pool = np.bincount(columns["pool"], weights=work, minlength=pools)
    shares = per_pool / per_pool.sum() if per_pool.sum() else per_pool
    return f"pools ask for {shares.min():.1%} to {shares.max():.1%} of the work each"


def _overload(load: float, window: float, accelerators: int) -> str:
    """What a load above 1 does over the window: the backlog it leaves grows every day."""
    per_day = (load - 1) * accelerators * 24
    return (
        f"offered load {load:.2f} is above 1 over {_span(window)} of submissions: "
        f"queues grow without bound, the backlog by about {per_day:,.0f} accelerator-hours "
        f"a day ({(load - 1) * 24:.1f} h of the whole fleet), "
        f"{(load - 1) * window / HOUR:,.0f} h of the whole fleet by the last submission"
    )


def _span(seconds: float) -> str:
    return f"{seconds / HOUR:.1f} h" if seconds < 2 * DAY else f"{seconds / DAY:.1f} days"


def _offered_load(columns: dict[str, np.ndarray], factor: float, accelerators: int) -> float:
    """The work that can be done inside the submission window with submit times scaled by
    `factor` (each job counted up to the window's end), over the capacity in that window."""
    submit, runtime = columns["submit"], columns["runtime"]
    acc = columns["accelerators"].astype(np.float64)
    window = (float(submit[-1]) or 1.0) * factor
    inside = np.minimum(runtime, window - submit * factor)
    return float(np.dot(acc, inside)) / (accelerators * window)


def _rate_factor(
    columns: dict[str, np.ndarray], *, load: float, accelerators: int
) -> tuple[float, float]:
    """The time factor f for submit times such that the work that can be done inside the
    submission window (each job counted up to the window's end) is `load` x capacity x
    window. Counting only the work inside the window keeps a heavy tail of long jobs from
    stretching the window into one the facility never fills. Found by bisection; the ratio
    falls as f grows."""

    def ratio(f: float) -> float:
        return _offered_load(columns, f, accelerators)

    low, high = 1e-9, 1.0
    while ratio(high) > load and high < 1e9:
        high *= 10
    if ratio(low) < load:
        return low, ratio(low)
    for _ in range(60):
        mid = (low * high) ** 0.5
        if ratio(mid) > load:
            low = mid
        else:
            high = mid
    return high, ratio(high)


def bind_classes(
    workload: Workload, parts: Sequence[Partition]
) -> tuple[Workload, list[tuple[int, ...]]]:
    """Eligible partitions per class set, and the workload without jobs no partition can
    ever hold (counted in `set_aside`). An unknown class is an error naming the line."""
    known = {p.accelerator for p in parts}
    eligible: list[tuple[int, ...]] = []
    for index, classes in enumerate(workload.class_sets):
        missing = [c for c in classes if c not in known]
        if missing:
            first = int(np.flatnonzero(workload.class_set == index)[0])
            raise InvalidInput(
                f"{workload.where(first)}: unknown accelerator class {missing[0]!r} "
                f"(the fleet has {', '.join(sorted(known))})"
            )
        eligible.append(
            tuple(i for i, p in enumerate(parts) if not classes or p.accelerator in classes)
        )
    largest = np.array([max(parts[i].size for i in e) for e in eligible], dtype=np.int64)
    largest_domain = np.array(
        [max(parts[i].largest_domain for i in e) for e in eligible], dtype=np.int64
    )
    room = np.where(
        workload.one_domain, largest_domain[workload.class_set], largest[workload.class_set]
    )
    too_big = workload.accelerators > room
    if not too_big.any():
        return workload, eligible
    kept = workload.select(~too_big)
    domain_big = int((too_big & workload.one_domain).sum())
    if domain_big:
        kept.set_aside["larger than any interconnect domain of its classes"] += domain_big
    if int(too_big.sum()) - domain_big:
        kept.set_aside["larger than any partition of its classes"] += (
            int(too_big.sum()) - domain_big
        )
    return kept, eligible
