"""What commonlab's reclaim settings trade: the worst weekly deviation from the fair share
against utilisation and mean JCT, for variants of `ReclaimSettings` on the quick regimes of
the scenario family (docs/simulator.md, "The policies").

    .venv/bin/python bench/reclaim_trade.py --regime overload-1.2 --regime bursty
"""

from __future__ import annotations

import argparse
import time

from commonlab.compute.share_controller import ReclaimSettings
from commonlab.simulator import policies
from commonlab.simulator.sweep import sweep

VARIANTS: dict[str, ReclaimSettings | None] = {
    "weights only": None,
    "caps only": ReclaimSettings(budget=0.0),
    "preempt_above 0.20": ReclaimSettings(budget=0.25, preempt_above=0.20),
    "preempt_above 0.10 (RECLAIM)": policies.RECLAIM,
    "preempt_above 0.02": ReclaimSettings(budget=0.25, preempt_above=0.02),
    "preempt, no caps": ReclaimSettings(budget=0.25, preempt_above=0.10, caps=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", action="append", help="a regime (repeat; default all)")
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default = policies.RECLAIM
    print("| variant | regime | worst weekly deviation | utilisation | mean JCT | preemptions |")
    print("|---|---|---:|---:|---:|---:|")
    try:
        for label in args.variant or list(VARIANTS):
            # CommonlabPolicy() reads RECLAIM when it is made: the sweep makes it by name.
            policies.RECLAIM = VARIANTS[label] or ReclaimSettings(budget=0.0, caps=False)
            started = time.perf_counter()
            report = sweep(args.regime or (), ["commonlab"], quick=True, seeds=[args.seed])
            for regime in report["regimes"]:
                f = regime["policies"]["commonlab"]
                print(
                    f"| {label} | {regime['regime']} | {f['weekly_deviation'] * 100:.2f} pt "
                    f"| {f['utilisation'] * 100:.2f}% | {f['mean_jct_h']:.2f} h "
                    f"| {f['preemptions']} |",
                    flush=True,
                )
            print(f"<!-- {label}: {time.perf_counter() - started:.0f} s -->", flush=True)
    finally:
        policies.RECLAIM = default


if __name__ == "__main__":
    main()
