"""Charts a council member reads alone: each names its trace, fleet, regulation and load,
writes its values, keeps every pool's full name and tells a dozen pools apart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from commonlab.cli.main import main
from commonlab.simulator.charts import point_limits, pool_styles

ROOT = Path(__file__).resolve().parents[2]
# Fourteen member states: with the regulation's other pools, seventeen pools to tell apart.
STATES = ["AT", "BE", "CZ", "DE", "DK", "ES", "FI", "FR", "GR", "IE", "IT", "NL", "PL", "SE"]


def _text(svg: Path) -> str:
    """Every piece of text the SVG draws, joined by spaces."""
    root = ET.parse(svg).getroot()
    return " ".join(" ".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("charts")
    document = json.loads((ROOT / "examples" / "regulation.json").read_text())
    document["regulation"]["title"] = "Fourteen states"
    document["contribution_scale"] = {
        "shares": {code: 8 if k < 2 else 7 for k, code in enumerate(STATES)}
    }
    regulation = folder / "regulation.json"
    regulation.write_text(json.dumps(document))
    # Every state asks for work, in a busy stretch where each waits.
    rows = "".join(
        f"{i},lab-{STATES[i % len(STATES)]},{i * 20},{900 + (i * 37) % 1800},{1 + i % 4}\n"
        for i in range(400)
    )
    trace = folder / "busy-cluster.csv"
    trace.write_text("job_id,tenant,submit,runtime,accelerators\n" + rows)
    fleet = folder / "fleet.toml"
    fleet.write_text(
        '[[sites]]\nname = "here"\ncountry = "CH"\n\n[[partitions]]\nname = "p"\n'
        'site = "here"\naccelerator = "H100"\nnodes = 4\naccelerators_per_node = 4\n'
    )
    mapping = [arg for code in STATES for arg in ("--map", f"lab-{code}={code}")]
    out = folder / "out"
    main(
        [
            "simulate",
            "--fleet",
            str(fleet),
            "--trace",
            str(trace),
            "--regulation",
            str(regulation),
            "--policy",
            "fifo",
            "--policy",
            "commonlab",
            "--load",
            "1.1",
            "--out",
            str(out),
            *mapping,
        ]
    )
    return out


CHARTS = ("policies", "demand", "weekly", "shares")


@pytest.mark.parametrize("chart", CHARTS)
def test_every_chart_names_its_trace_fleet_regulation_and_load(study: Path, chart: str) -> None:
    report = json.loads((study / "report.json").read_text())
    text = _text(study / f"{chart}.svg")
    assert "trace: busy-cluster.csv" in text
    assert "fleet: 16 accelerators" in text
    assert "regulation: Fourteen states" in text
    assert f"load: {report['workload']['offered_load']:.2f}" in text


@pytest.mark.parametrize("chart", ("demand", "weekly"))
def test_pool_names_are_written_whole(study: Path, chart: str) -> None:
    report = json.loads((study / "report.json").read_text())
    text = _text(study / f"{chart}.svg")
    for pool in report["entitlements"]:
        assert pool in text, pool


def test_values_are_written_on_the_marks(study: Path) -> None:
    report = json.loads((study / "report.json").read_text())
    policies = _text(study / "policies.svg")
    for figures in report["policies"].values():
        assert f"{100 * figures['utilisation']:.1f}%" in policies
        assert f"{figures['mean_jct_h']:.2f}" in policies
        assert f"{100 * figures['share_week']['max_abs_deviation']:.2f}" in policies
    weekly = _text(study / "weekly.svg")
    rows = report["policies"]["commonlab"]["share_week"]["pools"]
    for pool, row in rows.items():
        if row["windows_waiting"]:
            assert f"{100 * row['worst_deviation']:+.2f}" in weekly, pool
    assert "not tested" in weekly  # the regulation's pools without work
    demand = _text(study / "demand.svg")
    for row in report["workload"]["pools"].values():
        assert f"{100 * row['demand_share']:.1f}%" in demand


def test_the_daily_chart_tells_the_pools_that_waited_apart(study: Path) -> None:
    report = json.loads((study / "report.json").read_text())
    waited = [
        pool
        for pool, values in report["policies"]["fifo"]["daily_share"]["fair_deviation"].items()
        if any(v is not None for v in values)
    ]
    assert len(waited) >= 12
    text = _text(study / "shares.svg")
    assert all(pool in text for pool in waited)


def test_no_two_pools_look_alike() -> None:
    pools = [f"pool-{k}" for k in range(60)]
    styles = pool_styles(pools)
    looks = {(s["color"], s["marker"], s["linestyle"]) for s in styles.values()}
    assert len(looks) == 60
    # A dozen pools differ by colour alone.
    assert len({styles[p]["color"] for p in pools[:12]}) == 12


@pytest.mark.parametrize(
    "values", [(86.7, 87.7), (99.4, 99.9), (0.2, 0.1), (50.0, 50.0), (10.0, 60.0)]
)
def test_a_one_point_difference_shows(values: tuple[float, float]) -> None:
    bottom, top = point_limits(values)
    assert 0 <= bottom <= min(values) and max(values) <= top <= 100
    # The axis is at least 4 points tall and no taller than the values need (with a
    # margin): a one-point difference between close values takes a quarter of it.
    spread = abs(values[0] - values[1])
    assert 4 - 1e-9 <= top - bottom <= max(4, 1.3 * spread) + 1e-9
