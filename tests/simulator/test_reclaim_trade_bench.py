"""bench/reclaim_trade.py run on one quick regime, so the bench cannot rot as the sweep it
calls changes (it did once: the sweep's `seed=` became `seeds=`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from commonlab.simulator import policies

BENCH = Path(__file__).resolve().parents[2] / "bench" / "reclaim_trade.py"


def test_the_reclaim_trade_bench_prints_a_row_per_variant_and_regime(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("reclaim_trade", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    default = policies.RECLAIM
    argv = ["reclaim_trade.py", "--regime", "steady-0.7", "--variant", "caps only"]
    monkeypatch.setattr(sys, "argv", [*argv, "--variant", "weights only"])
    bench.main()
    printed = capsys.readouterr().out
    assert "| caps only | steady-0.7 |" in printed
    assert "| weights only | steady-0.7 |" in printed
    assert policies.RECLAIM is default  # the variant it ran is put back
