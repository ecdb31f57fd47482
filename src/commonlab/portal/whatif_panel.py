"""What a motion's page shows of its latest what-if simulation: the figures under the
regulation in force and the proposal side by side, and the geometry of a bar chart of each
pool's mean queueing delay, rendered as tables and inline SVG."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from commonlab.policy.principal import Principal
from commonlab.portal.pages import POOL_LABELS
from commonlab.simulator import service
from commonlab.simulator.schemas import WhatIfOut

__all__ = ["PoolRow", "WaitBar", "WhatIfPanel", "motion_whatif", "whatif_panel"]

NATIONAL = "national:"
WIDTH, LABEL_WIDTH, ROW = 600, 190, 34


@dataclass(frozen=True)
class PoolRow:
    pool: str
    label: str
    entitled: tuple[str, str]  # in force, proposed: "12.0%"
    mean_wait: tuple[str, str]  # minutes
    p99_wait: tuple[str, str]
    delivered: tuple[str, str]
    share_error: tuple[str, str]  # largest hourly |delivered - entitled| with work waiting
    fleet_used: tuple[str, str]  # delivered x utilisation: the share of the fleet it used


@dataclass(frozen=True)
class WaitBar:
    """One pool's two bars (in force above, proposed below) in SVG user units."""

    label: str
    y: float
    before_width: float
    after_width: float
    before_text: str
    after_text: str


@dataclass(frozen=True)
class WhatIfPanel:
    whatif: WhatIfOut
    summary: list[tuple[str, str, str]]  # figure, in force, proposed
    pools: list[PoolRow]
    bars: tuple[WaitBar, ...]
    # Which workload was replayed, in words ("workload not stated" for older attachments).
    source: str
    # Why the comparison cannot tell the regulations apart, when it cannot: shown instead of
    # columns that would read as "the proposal changes nothing".
    no_difference: str | None
    width: int = WIDTH
    label_width: int = LABEL_WIDTH
    row: int = ROW
    bar: int = 12

    @property
    def height(self) -> int:
        return len(self.bars) * self.row + 30  # room for the legend below


def motion_whatif(db: Session, actor: Principal, motion_id: int) -> WhatIfPanel | None:
    """The panel of the motion's latest simulation, if one is attached."""
    latest = service.latest_whatif(db, actor, motion_id)
    return None if latest is None else whatif_panel(latest)


def whatif_panel(whatif: WhatIfOut) -> WhatIfPanel:
    doc = whatif.document
    before, after = doc.in_force.figures, doc.proposed.figures
    summary = [
        ("Utilisation", _pct(before.utilisation), _pct(after.utilisation)),
        ("Mean queueing delay", _min(before.mean_wait_h), _min(after.mean_wait_h)),
        ("p99 queueing delay", _min(before.p99_wait_h), _min(after.p99_wait_h)),
        ("Mean job completion time", _h(before.mean_jct_h), _h(after.mean_jct_h)),
        (
            "Largest hourly shortfall from the fair share of a pool with work waiting",
            _pct(before.max_shortfall_hour),
            _pct(after.max_shortfall_hour),
        ),
        ("Jain's fairness index (hourly)", f"{before.jain_hour:.3f}", f"{after.jain_hour:.3f}"),
    ]
    names = sorted(before.pools, key=lambda p: (not p.startswith(NATIONAL), p))
    rows = []
    for name in names:
        b, a = before.pools[name], after.pools[name]
        rows.append(
            PoolRow(
                pool=name,
                label=_label(name),
                entitled=(_pct(b.entitled), _pct(a.entitled)),
                mean_wait=(_min(b.mean_wait_h), _min(a.mean_wait_h)),
                p99_wait=(_min(b.p99_wait_h), _min(a.p99_wait_h)),
                delivered=(_pct(b.delivered), _pct(a.delivered)),
                share_error=(_pct(b.max_abs_deviation_hour), _pct(a.max_abs_deviation_hour)),
                fleet_used=(
                    _pct(b.delivered * before.utilisation),
                    _pct(a.delivered * after.utilisation),
                ),
            )
        )
    plot = WIDTH - LABEL_WIDTH - 80  # room on the right for the value text
    largest = max(
        (max(before.pools[n].mean_wait_h, after.pools[n].mean_wait_h) for n in names),
        default=0.0,
    )
    bars = tuple(
        WaitBar(
            label=_label(name),
            y=i * ROW + 4,
            before_width=_length(before.pools[name].mean_wait_h, largest, plot),
            after_width=_length(after.pools[name].mean_wait_h, largest, plot),
            before_text=_min(before.pools[name].mean_wait_h),
            after_text=_min(after.pools[name].mean_wait_h),
        )
        for i, name in enumerate(names)
    )
    workload = doc.workload
    source = (
        "workload not stated"
        if workload.source is None
        else workload.source.describe(list(workload.traces))
    )
    return WhatIfPanel(whatif, summary, rows, bars, source, doc.no_difference())


def _label(pool: str) -> str:
    if pool.startswith(NATIONAL):
        return pool.removeprefix(NATIONAL)
    return POOL_LABELS.get(pool, pool)


def _length(value: float, largest: float, plot: float) -> float:
    if largest <= 0:
        return 0.0
    return round(max(plot * value / largest, 1.0 if value else 0.0), 2)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _min(hours: float) -> str:
    return f"{hours * 60:.1f} min"


def _h(hours: float) -> str:
    return f"{hours:.2f} h"
