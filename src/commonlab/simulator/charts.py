"""Charts of a comparison report (SVG, matplotlib's Agg backend) that a council member can
read without the console beside them: each names its trace(s), fleet, regulation and load;
values are written on the marks; pools keep their full names and a style of their own.
The headline figures per policy, each pool's demand against its entitlement, each pool's
largest weekly deviation from its fair share, the daily deviation over time and, with
fidelity, simulated against recorded waits."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["point_limits", "pool_styles", "subtitle", "write_charts"]

# Pools are told apart by colour first (20 distinct ones), then by marker and line style.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LINESTYLES = ("-", "--", ":", "-.")
_POLICY_COLOUR = "#4c72b0"
# Utilisation is drawn as points on an axis at least this many percentage points tall, so
# a one-point difference takes a visible part of it (bars from 0 would hide it).
_MIN_SPAN = 4.0


def subtitle(report: dict[str, Any]) -> str:
    """What the run simulated, in one line: trace(s), fleet, regulation and offered load."""
    workload = report["workload"]
    traces = ", ".join(workload.get("traces") or ["?"])
    load = workload.get("offered_load")
    return (
        f"trace{'s' if len(workload.get('traces') or []) > 1 else ''}: {traces} · "
        f"fleet: {report['fleet']['accelerators']:,} accelerators · "
        f"regulation: {report.get('regulation') or 'unnamed'} · "
        f"load: {'not measured' if load is None else f'{load:.2f}'} · "
        f"{workload['jobs']:,} jobs"
    )


def point_limits(values: Sequence[float], *, lowest: float = 0.0, highest: float = 100.0):
    """Axis limits for values drawn as points: the values with a margin, at least
    `_MIN_SPAN` tall and inside [lowest, highest]."""
    low, high = min(values), max(values)
    margin = max((_MIN_SPAN - (high - low)) / 2, 0.15 * (high - low))
    bottom, top = max(lowest, low - margin), min(highest, high + margin)
    if top - bottom < _MIN_SPAN:  # pushed against a bound: extend the other way
        bottom, top = (
            (bottom, min(highest, bottom + _MIN_SPAN))
            if bottom == lowest
            else (max(lowest, top - _MIN_SPAN), top)
        )
    return bottom, top


def pool_styles(pools: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A colour, marker and line style per pool, no two pools alike (up to 560 pools)."""
    from matplotlib import colormaps

    # tab20 pairs a dark and a light shade of each hue: all the dark ones first.
    tab20 = colormaps["tab20"].colors
    palette = tab20[0::2] + tab20[1::2]
    return {
        pool: {
            "color": palette[k % len(palette)],
            "marker": _MARKERS[k % len(_MARKERS)],
            "linestyle": _LINESTYLES[(k // len(palette)) % len(_LINESTYLES)],
        }
        for k, pool in enumerate(pools)
    }


def write_charts(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "commonlab"  # stable ids: the same report, the same file
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, never outlined
    context = subtitle(report)
    charts = [
        ("policies.svg", _policies),
        ("demand.svg", _demand),
        ("weekly.svg", _weekly),
        ("shares.svg", _shares),
    ]
    written = []
    for name, draw in charts:
        fig, title = draw(report, plt)
        written.append(_save(fig, out / name, plt, title=title, context=context))
    for name, fid in report["policies"].items():
        if "percentiles" in fid.get("fidelity", {}):
            fig, title = _fidelity(name, fid["fidelity"], plt)
            path = out / f"fidelity-{name}.svg"
            written.append(_save(fig, path, plt, title=title, context=context))
    return written


def _policies(report: dict[str, Any], plt: Any) -> Any:
    policies = report["policies"]
    names = list(policies)
    tolerance = 100 * report.get("tolerance", 0.02)
    fig, axes = plt.subplots(1, 5, figsize=(max(15.5, 3.4 * len(names) * 5 / 4), 3.6))
    title = "Policies side by side"
    utilisation = [100 * policies[n]["utilisation"] for n in names]
    ax = axes[0]
    ax.plot(names, utilisation, "o", color=_POLICY_COLOUR, ms=7)
    ax.set_ylim(*point_limits(utilisation))
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.grid(axis="y", lw=0.4, alpha=0.6)
    for x, value in enumerate(utilisation):
        ax.annotate(
            f"{value:.1f}%",
            (x, value),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.set_title("utilisation (completed work), %", fontsize=8)
    bars = [
        ("mean_jct_h", "mean JCT, h", 1, "{:.2f}"),
        ("p99_wait_h", "p99 queueing delay, h", 1, "{:.2f}"),
        ("week", "largest weekly |deviation| from fair, pt", 100, "{:.2f}"),
        ("lost_accelerator_hours", "accelerator-hours lost to preemption", 1, "{:,.0f}"),
    ]
    for ax, (key, panel, scale, fmt) in zip(axes[1:], bars, strict=True):
        values = [
            scale
            * (
                policies[n]["share_week"]["max_abs_deviation"]
                if key == "week"
                else policies[n][key]
            )
            for n in names
        ]
        drawn = ax.bar(names, values, color=_POLICY_COLOUR)
        ax.bar_label(drawn, labels=[fmt.format(v) for v in values], fontsize=7, padding=2)
        ax.margins(y=0.15)
        if key == "week":
            ax.axhline(tolerance, color="#c44e52", lw=1, ls="--")
            panel += f" (- - ±{tolerance:g})"
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0))
        ax.set_title(panel, fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=20)
    return fig, title


def _demand(report: dict[str, Any], plt: Any) -> Any:
    demand = report["workload"]["pools"]
    pools = list(demand)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * len(pools)))
    title = "Each pool's demand against its entitlement"
    rows = range(len(pools))
    entitled = [100 * demand[p]["entitled"] for p in pools]
    asked = [100 * demand[p]["demand_share"] for p in pools]
    shown = ax.barh([r + 0.2 for r in rows], entitled, 0.4, color="#b0b0b0", label="entitled")
    ax.bar_label(shown, labels=[f"{v:.1f}%" for v in entitled], fontsize=7, padding=2)
    shown = ax.barh(
        [r - 0.2 for r in rows],
        asked,
        0.4,
        color=_POLICY_COLOUR,
        label="share of the accelerator-hours asked",
    )
    ax.bar_label(
        shown,
        labels=[
            f"{v:.1f}% ({demand[p]['accelerator_hours']:,.0f} h)"
            for v, p in zip(asked, pools, strict=True)
        ],
        fontsize=7,
        padding=2,
    )
    ax.set_yticks(list(rows), pools, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("percent", fontsize=8)
    ax.margins(x=0.25)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(labelsize=7)
    return fig, title


def _weekly(report: dict[str, Any], plt: Any) -> Any:
    policies = report["policies"]
    names = list(policies)
    pools = list(report["entitlements"])
    tolerance = 100 * report.get("tolerance", 0.02)
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.3 * len(pools) * len(names)))
    title = "Largest weekly deviation from the fair share while the pool had work waiting, points"
    height = 0.8 / len(names)
    styles = pool_styles(names)
    for i, name in enumerate(names):
        rows = policies[name]["share_week"]["pools"]
        ys = [k + (i - (len(names) - 1) / 2) * height for k in range(len(pools))]
        tested = [p in rows and rows[p]["windows_waiting"] > 0 for p in pools]
        values = [
            100 * rows[p]["worst_deviation"] if t else 0.0
            for p, t in zip(pools, tested, strict=True)
        ]
        drawn = ax.barh(ys, values, height, color=styles[name]["color"], label=name)
        ax.bar_label(
            drawn,
            labels=[
                f"{v:+.2f}" if t else "not tested" for v, t in zip(values, tested, strict=True)
            ],
            fontsize=6,
            padding=2,
        )
    ax.axvspan(
        -tolerance, tolerance, color="#55a868", alpha=0.15, lw=0, label=f"±{tolerance:g}", zorder=0
    )
    ax.axvline(0, color="grey", lw=0.5)
    entitled = report["entitlements"]
    ax.set_yticks(range(len(pools)), [f"{p} ({100 * entitled[p]:.1f}%)" for p in pools], fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.2)
    ax.set_xlabel(
        "points of what was delivered while the pool waited (+: more than fair)", fontsize=8
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.tick_params(labelsize=7)
    return fig, title


def _shares(report: dict[str, Any], plt: Any) -> Any:
    from matplotlib.ticker import MaxNLocator

    policies = report["policies"]
    names = list(policies)
    tolerance = 100 * report.get("tolerance", 0.02)
    styles = pool_styles(list(report["entitlements"]))
    fig, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.4), sharey=True, squeeze=False
    )
    title = "Daily deviation from the fair share, days the pool waited, points"
    for ax, name in zip(axes[0], names, strict=True):
        series = policies[name]["daily_share"]
        days = series["edges"][:-1]
        for pool, values in series["fair_deviation"].items():
            points = [(d, 100 * v) for d, v in zip(days, values, strict=True) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), lw=1, ms=3, label=pool, **styles[pool])
        ax.axhspan(-tolerance, tolerance, color="#55a868", alpha=0.15, lw=0)
        ax.set_xlim(-0.5, max(days, default=0) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("day", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("points", fontsize=8)
    handles = {}
    for ax in axes[0]:
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 0.9),
            ncols=1 + len(handles) // 25,
        )
    return fig, title


def _fidelity(name: str, fid: dict[str, Any], plt: Any) -> Any:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    title = (
        f"Queueing delay, simulated ({name}) against recorded, {fid['jobs']:,} jobs: "
        f"KS {fid['ks']:.2f}"
    )
    levels = list(range(101))
    for label, key, style in (
        ("recorded", "recorded_s", "-"),
        (f"simulated ({name})", "simulated_s", "--"),
    ):
        ax.plot([max(v, 0.5) for v in fid["percentiles"][key]], levels, style, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("queueing delay, s (0 drawn at 0.5 s)", fontsize=8)
    ax.set_ylabel("percent of jobs at or below", fontsize=8)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    return fig, title


def _save(fig: Any, path: Path, plt: Any, *, title: str, context: str) -> Path:
    """The figure under its title and the run's context, whole: the heading takes a fixed
    height in inches whatever the figure's, and bbox_inches="tight" widens the file to every
    label and legend rather than cutting a pool's name."""
    width, height = fig.get_size_inches()
    context = textwrap.fill(context, width=int(width * 14))
    heading = 0.45 + 0.16 * (context.count("\n") + 1)  # inches: title, then context lines
    fig.tight_layout(rect=(0, 0, 1, 1 - (heading + 0.1) / height))
    fig.text(0.01, 1 - 0.08 / height, title, fontsize=11, ha="left", va="top")
    fig.text(0.01, 1 - 0.4 / height, context, fontsize=8, color="#444444", ha="left", va="top")
    fig.savefig(path, metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return path
