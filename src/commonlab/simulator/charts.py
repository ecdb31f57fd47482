"""Charts of a comparison report (SVG, matplotlib's Agg backend): the headline figures per
policy side by side, and each policy's delivered versus entitled share per pool over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_charts"]


def write_charts(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = report["policies"]
    names = list(policies)
    written = []

    panels = [
        ("utilisation", "utilisation", 100, "%"),
        ("mean_jct_h", "mean JCT", 1, "h"),
        ("p99_wait_h", "p99 queueing delay", 1, "h"),
        ("max_shortfall", "max hourly shortfall vs entitlement", 100, "points"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3))
    for ax, (key, title, scale, unit) in zip(axes, panels, strict=True):
        values = [
            (policies[n]["share_hour"][key] if key == "max_shortfall" else policies[n][key]) * scale
            for n in names
        ]
        ax.bar(names, values, color="#4c72b0")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = out / "policies.svg"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    fig, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.2), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        series = policies[name]["hourly_share"]
        hours = series["edges"][:-1]
        for pool, shares in series["pools"].items():
            entitled = series["entitled"][pool]
            ax.plot(hours, [100 * (s - entitled) for s in shares], lw=1, label=pool)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"{name}: delivered - entitled share", fontsize=9)
        ax.set_xlabel("hour", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("percentage points", fontsize=8)
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    path = out / "shares.svg"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written
