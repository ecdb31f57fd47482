"""bench/utilisation_parts.py run on one quick draw, so the bench cannot rot as the policies
and the engine it calls change (bench/reclaim_trade.py did once)."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import bench_script


def test_the_bench_prints_what_each_mechanism_costs_per_regime(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = bench_script("utilisation_parts")
    argv = ["utilisation_parts.py", "--regime", "overload-1.2", "--seeds", "1", "--quick"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    header, _, row = capsys.readouterr().out.splitlines()
    assert "cost of the fair-share order | cost of the caps | cost of preemption" in header
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == "overload-1.2" and cells[-1] in ("0 of 1", "1 of 1")
    fifo, *costs, below = (float(cell.split()[0].rstrip("%")) for cell in cells[1:-1])
    # The costs add up to what commonlab's policy loses against FIFO.
    assert 90 < fifo <= 100 and sum(costs) == pytest.approx(below, abs=0.02)
