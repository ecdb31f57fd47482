"""Where commonlab's utilisation goes, part by part, over several draws of each regime: FIFO,
then commonlab's policy built up one mechanism at a time, each on the same workload, so the
difference between two steps is what that mechanism costs (docs/simulator.md, "Where the
utilisation goes").

    .venv/bin/python bench/utilisation_parts.py --regime overload-1.2 --regime bursty --seeds 5

Utilisation in points, as the sweep measures it. The steps: `fifo`; the fair-share order
(`multifactor` with the job-size factor and the share controller's weights, nothing else:
`CommonlabPolicy(reclaim=None)`); with the caps (`GrpTRES` at the target while a state is
under-served; no preemption); and with preemption too (commonlab's policy before the pin of
session 15). Each
cell is the median over the draws, with the range.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace

from commonlab.simulator import scenarios
from commonlab.simulator.engine import Policy, simulate
from commonlab.simulator.mapping import PoolMap
from commonlab.simulator.metrics import measure
from commonlab.simulator.policies import RECLAIM, CommonlabPolicy, FifoBackfill
from commonlab.simulator.run import prepare

# Each step adds one mechanism to the one before.
STEPS: dict[str, Callable[[], Policy]] = {
    "fifo": FifoBackfill,
    "the fair-share order": lambda: CommonlabPolicy(reclaim=None, pin=False),
    "the caps": lambda: CommonlabPolicy(reclaim=replace(RECLAIM, budget=0.0), pin=False),
    # Without the pin (session 15), as the figures in docs/simulator.md were measured.
    "preemption": lambda: CommonlabPolicy(pin=False),
}
ABOVE_LOAD_1 = ("overload-1.2", "overload-1.5", "bursty", "idle-return", "overload-long")


def utilisations(regime: scenarios.Regime, seed: int) -> dict[str, float]:
    """Each step's utilisation (in points) on one draw of `regime`."""
    trace = scenarios.generate(regime, seed=seed)
    scenario = prepare(
        scenarios.fleet_for(regime),
        scenarios.five_states_regulation(),
        [trace],
        pool_map=PoolMap.of(scenarios.tenant_pools(regime)),
    )
    workload = scenario.workload
    entitled = [scenario.entitlements.shares[p] for p in workload.pools]
    points = {}
    for step, make in STEPS.items():
        outcome = simulate(workload, scenario.parts, scenario.eligible, make(), entitled=entitled)
        figures = measure(workload, outcome, capacity=scenario.capacity, entitled=entitled)
        points[step] = 100 * figures["utilisation"]
    return points


def _cell(values: Sequence[float], unit: str = "") -> str:
    """ "0.59 (0.30 to 0.71)": the median over the draws, and the range."""
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f} to {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--regime", action="append", help="a regime (repeat; default: above load 1)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="draws per regime (seeds 0 to N-1)")
    parser.add_argument("--quick", action="store_true", help="the regimes' quick sizes")
    args = parser.parse_args()
    steps = list(STEPS)
    costs_of = " | ".join(f"cost of {step}" for step in steps[1:])
    print(
        f"| regime | fifo | {costs_of} | commonlab below fifo "
        "| draws where the order alone costs more than 0.5 |"
    )
    print("|---" + "|---:" * (len(steps) + 2) + "|")
    for name in args.regime or ABOVE_LOAD_1:
        regime = scenarios.regime(name)
        if args.quick:
            regime = regime.quick()
        draws = [utilisations(regime, seed) for seed in range(args.seeds)]
        costs = [[d[a] - d[b] for d in draws] for a, b in itertools.pairwise(steps)]
        below = [d[steps[0]] - d[steps[-1]] for d in draws]
        over = sum(cost > 0.5 for cost in costs[0])
        cells = [_cell([d[steps[0]] for d in draws], "%"), *(_cell(c) for c in costs)]
        print(f"| {name} | " + " | ".join(cells) + f" | {_cell(below)} | {over} of {len(draws)} |")


if __name__ == "__main__":
    main()
