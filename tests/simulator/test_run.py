"""The what-if for the council: one workload under two regulations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import RegulationDocument, entitlements
from commonlab.simulator.run import compare_regulations
from commonlab.simulator.workload import build_workload
from tests.simulator.helpers import fleet, trace

ROOT = Path(__file__).resolve().parents[2]


def test_compare_regulations_runs_both_on_the_same_workload() -> None:
    in_force = RegulationDocument.model_validate(
        json.loads((ROOT / "examples" / "regulation.json").read_text())
    )
    proposed_doc = json.loads((ROOT / "examples" / "regulation.json").read_text())
    proposed_doc["regulation"]["capacity"]["open_calls"] = 20
    proposed_doc["regulation"]["capacity"]["national_pools"] = 60
    proposed = RegulationDocument.model_validate(proposed_doc)
    pools = entitlements(in_force).pools
    jobs = [
        {"submit": i * 10, "runtime": 300, "size": 1 + i % 4, "tenant": f"t{i % 11}"}
        for i in range(120)
    ]
    workload = build_workload([trace(jobs)], pools=pools)
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 2, "accelerators_per_node": 4})
    report = compare_regulations(workload, spec, in_force, proposed, "commonlab")
    assert report["in_force"]["entitlements"]["open_calls"] == pytest.approx(0.3)
    assert report["proposed"]["entitlements"]["open_calls"] == pytest.approx(0.2)
    for side in ("in_force", "proposed"):
        assert report[side]["workload"]["jobs"] == 120
        assert "commonlab" in report[side]["policies"]

    smaller = dict(proposed_doc)
    smaller["contribution_scale"] = {"shares": {"DE": 25, "FR": 25, "IT": 25, "ES": 25}}
    with pytest.raises(InvalidInput, match="no share to pool"):
        compare_regulations(
            workload, spec, in_force, RegulationDocument.model_validate(smaller), "fifo"
        )
