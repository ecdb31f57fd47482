"""bench/reclaim_trade.py run on one quick regime, so the bench cannot rot as the sweep it
calls changes (it did once: the sweep's `seed=` became `seeds=`)."""

from __future__ import annotations

import sys

import pytest

from commonlab.simulator import policies
from tests.helpers import bench_script


def test_the_reclaim_trade_bench_prints_a_row_per_variant_and_regime(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = bench_script("reclaim_trade")
    default = policies.RECLAIM
    argv = ["reclaim_trade.py", "--regime", "steady-0.7", "--variant", "caps only"]
    monkeypatch.setattr(sys, "argv", [*argv, "--variant", "weights only"])
    bench.main()
    printed = capsys.readouterr().out
    assert "| caps only | steady-0.7 |" in printed
    assert "| weights only | steady-0.7 |" in printed
    assert policies.RECLAIM is default  # the variant it ran is put back
