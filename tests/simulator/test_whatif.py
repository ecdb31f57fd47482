"""The what-if's client side: one workload under two regulations, reduced to the summary a
motion carries, which the API's schema accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commonlab.simulator.inputs import RegulationDocument
from commonlab.simulator.schemas import WhatIfCreate
from commonlab.simulator.whatif import compare, summarise
from tests.simulator.helpers import fleet, trace

ROOT = Path(__file__).resolve().parents[2]


def _documents(**capacity: int) -> tuple[RegulationDocument, RegulationDocument]:
    data = json.loads((ROOT / "examples" / "regulation.json").read_text())
    in_force = RegulationDocument.model_validate(data)
    data["regulation"]["capacity"].update(capacity)
    return in_force, RegulationDocument.model_validate(data)


def _run(in_force: RegulationDocument, proposed: RegulationDocument) -> dict:
    jobs = [
        {"submit": i * 10, "runtime": 300 + i % 7 * 60, "size": 1 + i % 4, "tenant": f"t{i % 12}"}
        for i in range(200)
    ]
    spec = fleet({"name": "p", "accelerator": "H100", "nodes": 2, "accelerators_per_node": 4})
    comparison, pools = compare(spec, in_force, proposed, [trace(jobs)], policy="multifactor")
    return summarise(
        comparison,
        pools=pools,
        traces=["t.csv"],
        in_force={"title": "now", "sha256": "a" * 64, "version": 3},
        proposed={"title": "next", "sha256": "b" * 64},
        scale={"DE": "24"},
    )


def test_the_summary_compares_each_pool_under_both_regulations() -> None:
    body = _run(*_documents(open_calls=20, national_pools=60))
    WhatIfCreate.model_validate(body)  # what the facility will accept
    before, after = body["in_force"]["figures"], body["proposed"]["figures"]
    assert set(before["pools"]) == set(after["pools"])
    assert before["pools"]["open_calls"]["entitled"] == pytest.approx(0.3)
    assert after["pools"]["open_calls"]["entitled"] == pytest.approx(0.2)
    assert sum(p["jobs"] for p in before["pools"].values()) == 200
    assert sum(p["delivered"] for p in after["pools"].values()) == pytest.approx(1.0)
    assert body["workload"]["jobs"] == 200 and body["policy"] == "multifactor"


def test_a_pool_the_proposal_closes_is_left_out_and_said_so() -> None:
    body = _run(*_documents(directors_reserve=0, open_calls=35))
    WhatIfCreate.model_validate(body)
    assert "directors_reserve" not in body["in_force"]["figures"]["pools"]
    assert any("directors_reserve" in line for line in body["workload"]["how"])
