"""Charts of a comparison report (SVG, matplotlib's Agg backend): the headline figures per
policy side by side, each pool's largest weekly deviation from its fair share per policy,
the daily deviation over time, and, with fidelity, simulated against recorded waits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_charts"]


def write_charts(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "commonlab"  # stable ids: the same report, the same file
    policies = report["policies"]
    names = list(policies)
    tolerance = 100 * report.get("tolerance", 0.02)
    written = []

    panels = [
        ("utilisation", "utilisation (completed work)", 100, "%"),
        ("mean_jct_h", "mean JCT", 1, "h"),
        ("p99_wait_h", "p99 queueing delay", 1, "h"),
        ("week", "largest weekly |deviation| from fair share", 100, "points"),
        ("lost_accelerator_hours", "accelerator-hours lost to preemption", 1, "h"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3))
    for ax, (key, title, scale, unit) in zip(axes, panels, strict=True):
        values = [
            (policies[n]["share_week"]["max_abs_deviation"] if key == "week" else policies[n][key])
            * scale
            for n in names
        ]
        ax.bar(names, values, color="#4c72b0")
        if key == "week":
            ax.axhline(tolerance, color="#c44e52", lw=1, ls="--")
        ax.set_title(title, fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "policies.svg", plt))

    pools = list(report["entitlements"])
    fig, ax = plt.subplots(figsize=(max(6, 0.75 * len(pools) * len(names) / 2), 3.4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        rows = policies[name]["share_week"]["pools"]
        values = [100 * rows[p]["worst_deviation"] if p in rows else 0 for p in pools]
        ax.bar([k + i * width for k in range(len(pools))], values, width, label=name)
    ax.axhspan(-tolerance, tolerance, color="#55a868", alpha=0.15, lw=0)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(pools))])
    ax.set_xticklabels([p.replace("national:", "") for p in pools], fontsize=7, rotation=30)
    ax.set_ylabel("points of what was delivered", fontsize=8)
    ax.set_title(
        "Largest weekly deviation from the fair share while the pool had work waiting "
        f"(band: ±{tolerance:g})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    written.append(_save(fig, out / "weekly.svg", plt))

    fig, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.2), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        series = policies[name]["daily_share"]
        days = series["edges"][:-1]
        for pool, values in series["fair_deviation"].items():
            points = [(d, 100 * v) for d, v in zip(days, values, strict=True) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), lw=1, marker=".", ms=3, label=pool)
        ax.axhspan(-tolerance, tolerance, color="#55a868", alpha=0.15, lw=0)
        ax.set_title(f"{name}: daily deviation from fair share", fontsize=9)
        ax.set_xlabel("day", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("points (days the pool waited)", fontsize=8)
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    written.append(_save(fig, out / "shares.svg", plt))

    fidelity = {
        n: f["fidelity"] for n, f in policies.items() if "percentiles" in f.get("fidelity", {})
    }
    for name, fid in fidelity.items():
        fig, ax = plt.subplots(figsize=(5, 3.4))
        levels = list(range(101))
        for label, key, style in (
            ("recorded", "recorded_s", "-"),
            (f"simulated ({name})", "simulated_s", "--"),
        ):
            ax.plot([max(v, 0.5) for v in fid["percentiles"][key]], levels, style, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("queueing delay, s (0 drawn at 0.5 s)", fontsize=8)
        ax.set_ylabel("percent of jobs at or below", fontsize=8)
        ax.set_title(f"Queueing delay, {fid['jobs']:,} jobs: KS {fid['ks']:.2f}", fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / f"fidelity-{name}.svg", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return path
