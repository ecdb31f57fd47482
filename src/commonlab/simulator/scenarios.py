"""A seeded family of synthetic workloads across the regimes a facility meets: light and
overloaded, short and weeks-long jobs, small jobs and large gangs, and five member states
that behave differently. `generate` returns the same `Trace` the loaders return."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

from commonlab.compute.fleet_spec import FleetSpec
from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import RegulationDocument, pool_of_member
from commonlab.simulator.traces import Trace

__all__ = [
    "BURSTY",
    "IDLE_RETURN",
    "MEMBER_STATES",
    "OVER_ASKING",
    "REGIMES",
    "STEADY",
    "Regime",
    "behaviours",
    "check_regime",
    "five_states_regulation",
    "fleet_for",
    "generate",
    "regime",
    "tenant_pools",
    "tenants_of",
]

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
NODE = 8  # accelerators per node of a generated fleet
DOMAIN_NODES = 8  # nodes per interconnect domain (64 accelerators, as in the 100k example)
SHORTEST_RUNTIME = 60.0  # a job runs at least a minute
MOST_JOBS = 5_000_000  # a regime that needs more is a mistake, not a workload

# The five member states of issue 19 and their entitlements, in percent of the fleet.
MEMBER_STATES: tuple[tuple[str, int], ...] = (
    ("DE", 30),
    ("FR", 25),
    ("IT", 20),
    ("ES", 15),
    ("NL", 10),
)

# What a member state's tenants do over the submission window.
STEADY = "steady"
OVER_ASKING = "over-asking"  # asks `over_ask` times its entitled share of the demand
BURSTY = "bursty"  # submits all its work in bursts of `burst_hours` every `burst_every_days`
IDLE_RETURN = "idle-return"  # submits nothing for `idle_weeks`, then steadily again


@dataclass(frozen=True)
class Regime:
    """One kind of workload: the fleet it runs on, how much work arrives and its shape.

    `load` is the work that can be done inside the submission window (each job counted up
    to the window's end) over the fleet's capacity in that window, as `--load` reads it.
    Runtimes are lognormal (median and sigma) cut to [1 minute, `longest_runtime_h`];
    gangs are powers of two up to `largest_gang`, each twice as large `gang_decay` times
    as likely as the one before."""

    name: str
    description: str
    accelerators: int
    load: float
    weeks: float
    median_runtime_h: float = 1.0
    runtime_sigma: float = 1.8
    longest_runtime_h: float = 7 * 24
    largest_gang: int | None = None  # None: 1/8 of the fleet
    gang_decay: float = 0.5
    tenants_per_state: int = 3
    over_asking: str | None = "NL"
    over_ask: float = 3.0
    bursty: str | None = None
    burst_hours: float = 24.0
    burst_every_days: float = 7.0
    idle_return: str | None = None
    idle_weeks: float = 2.0

    @property
    def gang_limit(self) -> int:
        if self.largest_gang is not None:
            return self.largest_gang
        return max(1, self.accelerators // 8)

    def resized(self, *, accelerators: int, weeks: float) -> Regime:
        """The same regime on another fleet and window: gangs scale with the fleet, an idle
        spell keeps its share of the window."""
        factor = accelerators / self.accelerators
        return replace(
            self,
            accelerators=accelerators,
            weeks=weeks,
            largest_gang=max(1, int(self.gang_limit * factor)),
            idle_weeks=self.idle_weeks * weeks / self.weeks,
        )

    def quick(self) -> Regime:
        """A small version for tests and CI (a few hundred to a thousand jobs): a sixteenth
        of the fleet (at least 64 accelerators), one and a half weeks."""
        small = max(8 * NODE, self.accelerators // 16 // NODE * NODE)
        return self.resized(accelerators=small, weeks=1.5)


REGIMES: tuple[Regime, ...] = (
    Regime(
        "steady-0.7",
        "light: queues are short; NL over-asks",
        accelerators=512,
        load=0.7,
        weeks=4,
    ),
    Regime(
        "steady-0.9",
        "busy, short backlogs; NL over-asks",
        accelerators=512,
        load=0.9,
        weeks=4,
    ),
    Regime(
        "overload-1.2",
        "overload: every state has a backlog most of the time; NL over-asks",
        accelerators=512,
        load=1.2,
        weeks=4,
    ),
    Regime(
        "overload-1.5",
        "heavy overload: the backlog grows by half a day of the fleet's work a day; NL over-asks",
        accelerators=512,
        load=1.5,
        weeks=4,
    ),
    Regime(
        "bursty",
        "ES submits a week's work in one day, every week; NL over-asks",
        accelerators=512,
        load=1.1,
        weeks=4,
        bursty="ES",
    ),
    Regime(
        "idle-return",
        "FR (25%) is idle for two weeks, then returns; NL over-asks",
        accelerators=512,
        load=1.2,
        weeks=5,
        idle_return="FR",
    ),
    Regime(
        "overload-long",
        "issue 19's 504-GPU cluster: overload for two months, runtimes up to 3 weeks, "
        "gangs up to 64; NL over-asks, ES is bursty, FR idle for 3 weeks",
        accelerators=504,
        load=1.3,
        weeks=8,
        median_runtime_h=4.0,
        runtime_sigma=2.0,
        longest_runtime_h=21 * 24,
        largest_gang=64,
        bursty="ES",
        idle_return="FR",
        idle_weeks=3.0,
    ),
    Regime(
        "llm-gangs",
        "issue 19's LLM-era cluster: gangs up to 1,024 are the work; NL over-asks",
        accelerators=2416,
        load=1.0,
        weeks=4,
        median_runtime_h=2.0,
        runtime_sigma=1.5,
        longest_runtime_h=14 * 24,
        largest_gang=1024,
        gang_decay=0.75,
    ),
)


def regime(name: str) -> Regime:
    """The named regime; an unknown name is an error listing the known ones."""
    for candidate in REGIMES:
        if candidate.name == name:
            return candidate
    known = ", ".join(r.name for r in REGIMES)
    raise InvalidInput(f"unknown regime {name!r} (known: {known})")


def behaviours(of: Regime) -> dict[str, str]:
    """Each member state's behaviour in the regime."""
    result = {code: STEADY for code, _ in MEMBER_STATES}
    for code, behaviour in (
        (of.over_asking, OVER_ASKING),
        (of.bursty, BURSTY),
        (of.idle_return, IDLE_RETURN),
    ):
        if code is not None:
            result[code] = behaviour
    return result


def tenants_of(code: str, of: Regime) -> list[str]:
    return [f"{code}-{i}" for i in range(1, of.tenants_per_state + 1)]


def tenant_pools(of: Regime) -> dict[str, str]:
    """Every generated tenant to its member state's pool (`national:DE`, ...)."""
    return {
        tenant: pool_of_member(code) for code, _ in MEMBER_STATES for tenant in tenants_of(code, of)
    }


def five_states_regulation() -> RegulationDocument:
    """The regulation the regimes are judged under: the whole fleet is national pools, split
    30/25/20/15/10 between the five member states (examples/regulation-five-states.json)."""
    return RegulationDocument.model_validate(
        {
            "regulation": {
                "title": "Five member states (issue 19's sweep)",
                "capacity": {
                    "national_pools": 100,
                    "open_calls": 0,
                    "smes_and_public_bodies": 0,
                    "directors_reserve": 0,
                },
                "allocation": {"share_tolerance_percent": 2},
                "contribution_ceiling_percent": max(share for _, share in MEMBER_STATES),
            },
            "contribution_scale": {"shares": {code: share for code, share in MEMBER_STATES}},
        }
    )


def fleet_for(of: Regime) -> FleetSpec:
    """One partition of 8-accelerator nodes in domains of 8 nodes."""
    return FleetSpec.model_validate(
        {
            "sites": [{"name": "sweep", "country": "CH"}],
            "partitions": [
                {
                    "name": "gpu",
                    "site": "sweep",
                    "accelerator": "H100",
                    "nodes": of.accelerators // NODE,
                    "accelerators_per_node": NODE,
                    "nodes_per_domain": DOMAIN_NODES,
                }
            ],
        }
    )


def generate(of: Regime, *, seed: int = 0) -> Trace:
    """The regime's jobs, reproducible from `seed`: per member state a Poisson stream shaped
    by its behaviour, sizes and runtimes drawn independently of the state. The number of
    jobs is calibrated so that the offered load (work inside the window) is the regime's."""
    check_regime(of)
    window = of.weeks * WEEK
    columns = _draw_enough(of, seed=seed)
    # Keep the jobs of a random order up to the one that brings the offered load to the
    # regime's: a uniform thinning, so each state's stream keeps its shape.
    order = np.random.default_rng([seed, 1]).permutation(len(columns["submit"]))
    work = np.cumsum(_work_inside(columns, window)[order])
    kept = order[: int(np.searchsorted(work, of.load * of.accelerators * window)) + 1]
    columns = {k: v[np.sort(kept)] for k, v in columns.items()}

    trace = Trace(
        name=of.name,
        path=Path(f"generated:{of.name}:seed={seed}"),
        kind="generated",
        source_accelerators=of.accelerators,
    )
    order = np.argsort(columns["submit"], kind="stable")
    for line, i in enumerate(order, start=1):
        size = int(columns["accelerators"][i])
        trace.add(
            submit=float(columns["submit"][i]),
            runtime=float(columns["runtime"][i]),
            accelerators=size,
            tenant=str(columns["tenant"][i]),
            one_domain=size <= NODE,  # a job of one node asks for one domain, as in the study
            line=line,
        )
    achieved = _offered_load(columns, of.accelerators, window)
    roles = ", ".join(f"{code} {b}" for code, b in behaviours(of).items() if b != STEADY)
    trace.notes.append(
        f"generated regime {of.name} (seed {seed}): {len(trace):,} jobs over "
        f"{of.weeks:g} weeks, offered load {achieved:.2f}; {roles or 'all states steady'}"
    )
    return trace


def check_regime(of: Regime) -> None:
    """Each field of the regime in range; a bad one is a one-line error naming it."""
    if of.accelerators < NODE or of.accelerators % NODE:
        raise InvalidInput(
            f"regime {of.name}: accelerators must be a positive multiple of {NODE}, "
            f"not {of.accelerators}"
        )
    if not 0 < of.load <= 10:
        raise InvalidInput(f"regime {of.name}: load must be in (0, 10], not {of.load}")
    if not 0 < of.weeks <= 52:
        raise InvalidInput(f"regime {of.name}: weeks must be in (0, 52], not {of.weeks}")
    if not 1 <= of.gang_limit <= of.accelerators:
        raise InvalidInput(
            f"regime {of.name}: largest_gang must be 1 to {of.accelerators}, not {of.gang_limit}"
        )
    in_range = (
        ("longest_runtime_h", of.longest_runtime_h, SHORTEST_RUNTIME / HOUR, 365 * 24.0),
        ("median_runtime_h", of.median_runtime_h, SHORTEST_RUNTIME / HOUR, of.longest_runtime_h),
        ("runtime_sigma", of.runtime_sigma, 0.0, 5.0),
        ("gang_decay", of.gang_decay, 0.01, 1.0),
        ("tenants_per_state", of.tenants_per_state, 1, 1000),
        ("over_ask", of.over_ask, 0.01, 100.0),
        ("burst_hours", of.burst_hours, 1.0, of.burst_every_days * 24),
    )
    for field, value, low, high in in_range:
        if not low <= value <= high:  # NaN fails too
            raise InvalidInput(
                f"regime {of.name}: {field} must be {low:g} to {high:g}, not {value}"
            )
    states = {code for code, _ in MEMBER_STATES}
    named = [c for c in (of.over_asking, of.bursty, of.idle_return) if c is not None]
    if len(set(named)) != len(named) or not set(named) <= states:
        raise InvalidInput(
            f"regime {of.name}: over_asking, bursty and idle_return must be distinct member "
            f"states of {', '.join(sorted(states))}"
        )
    if of.idle_return is not None and not 0 < of.idle_weeks < of.weeks:
        raise InvalidInput(
            f"regime {of.name}: idle_weeks must be inside the {of.weeks:g}-week window"
        )


def _draw_enough(of: Regime, *, seed: int) -> dict[str, np.ndarray]:
    """Jobs offering at least the regime's load; the work per job is heavy-tailed, so the
    count is found by drawing, not computed."""
    window = of.weeks * WEEK
    jobs = 1000
    for _ in range(20):
        columns = _draw(of, seed=seed, jobs=jobs)
        offered = _offered_load(columns, of.accelerators, window)
        if offered >= of.load:
            return columns
        jobs = math.ceil(jobs * 1.25 * of.load / max(offered, of.load / 10))
        if jobs > MOST_JOBS:
            break
    raise InvalidInput(
        f"regime {of.name}: more than {MOST_JOBS:,} jobs would be needed for load {of.load:g}"
    )


def _draw(of: Regime, *, seed: int, jobs: int) -> dict[str, np.ndarray]:
    """About `jobs` jobs (each state's count is Poisson) with submit times shaped by each
    state's behaviour. The same seed and count give the same jobs."""
    rng = np.random.default_rng(seed)
    window = of.weeks * WEEK
    roles = behaviours(of)
    # Each state's share of the arriving work while it submits: its entitlement, times
    # `over_ask` for the over-asking state; an idle state submits at its rate once back.
    weight = {
        code: share * (of.over_ask if roles[code] == OVER_ASKING else 1.0)
        for code, share in MEMBER_STATES
    }
    active = {
        code: (window - of.idle_weeks * WEEK) / window if roles[code] == IDLE_RETURN else 1.0
        for code, _ in MEMBER_STATES
    }
    total = sum(weight[c] * active[c] for c in weight)
    submit, tenant = [], []
    for code, _ in MEMBER_STATES:
        count = int(rng.poisson(jobs * weight[code] * active[code] / total))
        submit.append(_arrivals(roles[code], of, rng, count))
        names = tenants_of(code, of)
        tenant.append(np.array(names)[rng.integers(0, len(names), size=count)])
    times = np.concatenate(submit)
    count = len(times)
    runtime = np.exp(
        math.log(of.median_runtime_h * HOUR) + of.runtime_sigma * rng.standard_normal(count)
    )
    runtime = np.clip(np.round(runtime), SHORTEST_RUNTIME, of.longest_runtime_h * HOUR)
    return {
        "submit": times,
        "runtime": runtime,
        "accelerators": _gangs(of, rng, count),
        "tenant": np.concatenate(tenant),
    }


def _arrivals(behaviour: str, of: Regime, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` submit times (seconds) in the window, as the behaviour spreads them."""
    window = of.weeks * WEEK
    if behaviour == IDLE_RETURN:
        return np.round(rng.uniform(of.idle_weeks * WEEK, window, size=count))
    if behaviour == BURSTY:
        period, burst = of.burst_every_days * DAY, of.burst_hours * HOUR
        bursts = max(1, math.ceil(window / period))
        starts = rng.integers(0, bursts, size=count) * period
        return np.minimum(np.round(starts + rng.uniform(0, burst, size=count)), window)
    return np.round(rng.uniform(0, window, size=count))


def _gangs(of: Regime, rng: np.random.Generator, count: int) -> np.ndarray:
    sizes = 2 ** np.arange(int(math.log2(of.gang_limit)) + 1)
    odds = of.gang_decay ** np.arange(len(sizes), dtype=np.float64)
    return sizes[rng.choice(len(sizes), size=count, p=odds / odds.sum())].astype(np.int64)


def _work_inside(columns: dict[str, np.ndarray], window: float) -> np.ndarray:
    """Each job's accelerator-seconds that fit before the window's end."""
    inside = np.minimum(columns["runtime"], np.maximum(window - columns["submit"], 0.0))
    return columns["accelerators"].astype(np.float64) * inside


def _offered_load(columns: dict[str, np.ndarray], accelerators: int, window: float) -> float:
    """Work that can be done inside the window over its capacity (as `--load` reads it)."""
    return float(_work_inside(columns, window).sum()) / (accelerators * window)


# Percent values are compared exactly by the regulation document.
assert sum(Decimal(share) for _, share in MEMBER_STATES) == 100
