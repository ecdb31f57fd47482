"""`commonlab up --demo`'s second stage on a served demo facility: the PI's multimodal corpus
and QA set published with every record's source and licence, a tiny GPT-2 trained on the
corpus by the `train` workload with its lineage, scored by `evaluate`; and without the ML
packages, the data alone and one line saying how to install them."""

from __future__ import annotations

import httpx
import pytest

from commonlab import demo_models
from commonlab.artifacts.mount import registry_for
from commonlab.demo_models import CORPUS, EVALS, ML_MISSING, MODEL, QA, build_demo_models
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.helpers import http_client
from tests.journeys.conftest import Demo, demo  # noqa: F401  (fixture)


def build(seeded: Demo, *, pi_token: str | None, ml: bool | None = None) -> list[str]:
    """Run the stage as `up --demo` runs it once the server answers; the lines it said."""
    said: list[str] = []
    facility = seeded.served.facility
    with facility.db.session() as db:
        build_demo_models(
            db,
            registry_for(facility),
            pi_token=pi_token,
            executor=seeded.served.settings.executor,
            say=said.append,
            ml=ml,
            poll_seconds=0.2,
        )
    return said


def records(api: httpx.Client, ref: str, path: str) -> list[dict]:
    repo, _, number = ref.partition("@")
    page = api.get(
        f"/api/v1/artifacts/{repo}/versions/{number}/records", params={"file": path, "limit": 100}
    )
    assert page.status_code == 200, page.text
    return page.json()["records"]


def check_corpus(api: httpx.Client) -> None:
    version = api.get(f"/api/v1/artifacts/{CORPUS}/versions/1").json()
    assert version["licenses"] == ["CC0-1.0"]
    assert {f["path"] for f in version["files"]} == {"data/text.jsonl", "data/media-000000.tar"}
    texts = records(api, f"{CORPUS}@1", "data/text.jsonl")
    assert len(texts) >= 50
    media = records(api, f"{CORPUS}@1", "data/media-000000.tar")
    kinds = {kind for record in media for kind in record["kinds"]}
    assert {"image", "audio"} <= kinds
    # Every record says where it came from and its licence itself, not by the version's.
    for record in texts + media:
        assert record["source_from"] == "record" and record["source"], record
        assert record["license_from"] == "record" and record["license"] == "CC0-1.0", record
    croissant = api.get(f"/api/v1/artifacts/{CORPUS}/versions/1/croissant").json()
    assert croissant["name"] == "Kiswahili multimodal demo corpus"
    qa = records(api, f"{QA}@1", "data/qa.jsonl")
    assert qa and all(r["license"] == "CC0-1.0" for r in qa)


def test_without_the_ml_packages_the_demo_publishes_its_data_and_says_how_to_train(
    demo: Demo,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_models, "ml_installed", lambda: False)
    said = build(demo, pi_token=demo.pi_token)
    assert said == [f"demo: published {CORPUS}@1 (text, images, speech) and {QA}@1", ML_MISSING]
    assert "pip install -e .[ml,data]" in ML_MISSING and "./scripts/up --demo" in ML_MISSING
    api = http_client(base_url=demo.url, timeout=30)
    check_corpus(api)
    assert api.get(f"/api/v1/artifacts/{MODEL}").status_code == 404
    assert (
        api.get("/api/v1/jobs", headers={"Authorization": f"Bearer {demo.pi_token}"}).json()[
            "items"
        ]
        == []
    )
    # A later start finds the data published: it says the line again, publishes nothing.
    assert build(demo, pi_token=None) == [ML_MISSING]
    assert api.get(f"/api/v1/artifacts/{CORPUS}").json()["latest"] == 1


@pytest.mark.slow
def test_the_demo_trains_and_evaluates_a_model_with_its_lineage_and_scores(
    demo: Demo,  # noqa: F811
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("inspect_ai")
    said = build(demo, pi_token=demo.pi_token)
    assert len(said) == 7, said
    assert said[1].startswith(f"demo: training a tiny GPT-2 on {CORPUS}@1 as job ")
    assert said[2] == f"demo: model published: {MODEL}@1 (lineage: trained on {CORPUS}@1)"
    assert said[3].startswith(f"demo: evaluating {MODEL}@1 on {QA}@1 as job ")
    assert said[4].startswith(f"demo: evaluated {MODEL}@1 on demo-kiswahili-qa: accuracy ")
    assert said[5].startswith(f"demo: indexing {CORPUS}@1 for search as job ")
    assert said[6] == (
        f"demo: search {MODEL}@1's training data at /search or with `commonlab search`"
    )

    api = http_client(base_url=demo.url, timeout=30)
    check_corpus(api)
    lineage = api.get(f"/api/v1/artifacts/{MODEL}/versions/1/lineage").json()
    assert any(
        e["from"] == f"{MODEL}@1" and e["to"] == f"{CORPUS}@1" and e["relation"] == "trained_on"
        for e in lineage["edges"]
    ), lineage
    model = api.get(f"/api/v1/artifacts/{MODEL}/versions/1").json()
    assert {"config.json", "model.safetensors", "README.md"} <= {f["path"] for f in model["files"]}
    evals = api.get(f"/api/v1/artifacts/{EVALS}/versions/1/lineage").json()
    assert any(e["to"] == f"{MODEL}@1" and e["relation"] == "evaluates" for e in evals["edges"])
    scores = api.get("/api/v1/evaluations", params={"model": f"{MODEL}@1"})
    assert scores.status_code == 200, scores.text
    [evaluation] = scores.json()["items"]
    assert evaluation["task"] == "demo-kiswahili-qa" and "accuracy" in evaluation["metrics"]
    # The corpus is indexed: its images are found by their captions, with their sources.
    asked = {"q": "Mistari ya rangi", "model": f"{MODEL}@1"}
    found = api.get("/api/v1/search", params=asked).json()
    assert found["count"] == 3 and all(hit["source"] for hit in found["hits"]), found

    # Restarted: everything is there, so nothing is done and nothing said.
    assert build(demo, pi_token=None) == []
