"""Journey 8, someone asks: was my work in the training data? A novelist searches the
training data of a released model for a passage from her book: the exact-match search finds
the two records holding it, with their sources. She files an opt-out; search stops showing
them at once, the next version of the dataset (made by a job) and its new index leave them
out, and the opt-out lists the released model trained on them before. She searches and files
the opt-out on the portal (Chromium), and the command line shows the same.

The data team's side is real facility work on the local executor: a model trained on the
dataset, an index built by an index job, the new version by an exclude job."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.test_journey_2_a_researcher_gets_compute import as_person, text_of
from tests.journeys.workloads import TEXT_TOML
from tests.portal.helpers import sign_in_browser

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSAGE = "the lighthouse keeper counted the gulls until the fog swallowed the harbour"
BOOK = "https://example.org/books/the-keeper"
DATASET = "datasets/proj-1/coastal-stories"
MODEL = "models/proj-1/coastal-gpt2"


def stories(folder: Path) -> None:
    """Short stories, each with its own source and licence; two quote the novel."""
    rows = [
        {
            "text": f"Story {n}: Amina walked to the market and bought {n} oranges for the road.",
            "source": f"https://example.org/stories/{n}",
            "license": "CC-BY-4.0",
        }
        for n in range(30)
    ]
    rows[7] = {
        "text": f"At dusk {PASSAGE}, and then he slept.",
        "source": f"{BOOK}/chapter-1",
        "license": "CC-BY-4.0",
    }
    rows[19] = {
        "text": f"She remembered the line: {PASSAGE}.",
        "source": "https://example.org/blog/quotes",
        "license": "CC-BY-4.0",
    }
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")


def flat(out: str) -> str:
    """The command's words as one line: the console wraps long lines at its width."""
    return " ".join(out.split())


def walk_the_portal(chromium, url: str, token: str, screenshot) -> int:
    """The novelist's part on the portal (Chromium, JavaScript off); the opt-out's number."""
    context = chromium.new_context(
        base_url=url, java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    try:
        sign_in_browser(page, token)
        page.goto(f"/artifacts/{MODEL}/versions/1")
        page.get_by_label("Search its training data").fill(PASSAGE)
        page.get_by_role("button", name="Search", exact=True).first.click()
        page.wait_for_url("**/search?**")
        assert page.locator("#results").inner_text().startswith("2 occurrences")
        hits = page.locator("ol.hits > li")
        assert hits.count() == 2
        shown = " ".join(hits.all_inner_texts())
        assert f"{BOOK}/chapter-1" in shown and "https://example.org/blog/quotes" in shown
        screenshot(page, "journey-8-search")
        page.goto("/optouts")
        page.get_by_label("A passage of text").check()
        page.get_by_label("The passage, digest or pattern").fill(PASSAGE)
        page.get_by_role("button", name="File the opt-out").click()
        page.wait_for_url("**/optouts/*?filed=1")
        assert "it matched 2 records" in page.get_by_role("status").inner_text()
        assert f"{MODEL}@1" in page.locator("main").inner_text()
        screenshot(page, "journey-8-optout")
        return int(re.search(r"/optouts/(\d+)", page.url).group(1))
    finally:
        context.close()


def test_journey_8_was_my_work_in_the_training_data(
    demo, capsys, monkeypatch, tmp_path, chromium, screenshot
):
    # The data team: the dataset, a model trained on it, and its index, all as jobs.
    as_person(monkeypatch, demo, demo.pi_token)
    folder = tmp_path / "coastal-stories"
    stories(folder)
    code, _, err = run(
        capsys,
        "dataset",
        "push",
        str(folder),
        "--repo",
        "proj-1/coastal-stories",
        "--license",
        "CC-BY-4.0",
        "-m",
        "stories",
    )
    assert code == 0, err
    config = tmp_path / "train.toml"
    config.write_text(TEXT_TOML)
    code, out, err = run(
        capsys,
        "train",
        "-p",
        "proj-1",
        "--config",
        str(config),
        "--dataset",
        "proj-1/coastal-stories",
        "--out",
        "coastal-gpt2",
        "--time",
        "15",
        "--watch",
    )
    assert code == 0 and "succeeded" in out, out + err
    # Indexing the model indexes each dataset of its training data without an index.
    code, out, err = run(
        capsys, "index", "build", f"{MODEL}@1", "-p", "proj-1", "--vocab-size", "400", "--watch"
    )
    assert code == 0 and "succeeded" in out, out + err
    code, out, err = run(capsys, "index", "status", "--model", f"{MODEL}@1", "--json")
    assert code == 0, out + err
    assert [(s["dataset"], s["status"], s["index"]) for s in json.loads(out)] == [
        (f"{DATASET}@1", "searched", "datasets/proj-1/coastal-stories-index@1")
    ]

    # The novelist, who belongs to no project, searches the released model's training data.
    novelist = demo.token_of("Francesca Conti")
    as_person(monkeypatch, demo, novelist)
    code, out, err = run(capsys, "search", PASSAGE, "--model", f"{MODEL}@1")
    assert code == 0, out + err
    out = flat(out)
    assert re.search(r"\b2\b occurrence", out), out
    assert f"{BOOK}/chapter-1" in out and "https://example.org/blog/quotes" in out
    assert "record 7 —" in out and "record 19 —" in out

    api = http_client(base_url=demo.url, timeout=60)
    me = {"Authorization": f"Bearer {novelist}"}
    found = api.get(
        "/api/v1/search", params={"q": PASSAGE, "model": f"{MODEL}@1"}, headers=me
    ).json()
    assert found["count"] == 2
    assert {h["record"] for h in found["hits"]} == {7, 19}
    assert all(PASSAGE in (h["match"]).strip() for h in found["hits"])

    # By meaning: a paraphrase finds the same records first (the first index embeds them).
    code, out, err = run(
        capsys,
        "search",
        "--meaning",
        "a lighthouse keeper watching seabirds in thick fog",
        "--model",
        f"{MODEL}@1",
        "--limit",
        "2",
    )
    assert code == 0, out + err
    assert {int(n) for n in re.findall(r"record (\d+) —", flat(out))} == {7, 19}, out

    # Membership by passage, with the evidence.
    code, out, err = run(capsys, "membership", "--model", f"{MODEL}@1", "--passage", PASSAGE)
    assert code == 0 and out.startswith("yes"), out + err

    # On the portal, in a browser: she searches from the model's page, sees the two records
    # with their sources, and files her opt-out through the form.
    optout_id = walk_the_portal(chromium, demo.url, novelist, screenshot)

    # The command line says the same: it matched both records, and names the model.
    code, out, err = run(capsys, "optout", "show", str(optout_id))
    assert code == 0, out + err
    assert "matched 2 record(s)" in flat(out)
    assert f"trained on it before the opt-out: {MODEL}@1" in flat(out)

    # Search honours it at once, before any index is rebuilt.
    found = api.get(
        "/api/v1/search", params={"q": PASSAGE, "model": f"{MODEL}@1"}, headers=me
    ).json()
    assert found["count"] == 0 and found["opted_out"] == 2 and found["hits"] == []

    # The record holds the request as commitments: the passage never appears in clear.
    entries = api.get(
        "/api/v1/record/entries",
        params={"type": "datasearch:optout:filed", "subject": f"optout/{optout_id}"},
    ).json()["items"]
    [entry] = [e["entry"] for e in entries]
    assert entry["data"]["records"] == 2
    assert entry["data"]["models_trained_before"] == [f"{MODEL}@1"]
    assert PASSAGE not in json.dumps(entry)

    # The data team publishes the next version without those records, and indexes it.
    as_person(monkeypatch, demo, demo.pi_token)
    code, out, err = run(
        capsys, "optout", "apply", "proj-1/coastal-stories", "-p", "proj-1", "--watch"
    )
    assert code == 0 and "succeeded" in out, out + err
    version = api.get(f"/api/v1/artifacts/{DATASET}/versions/2").json()
    assert "without 2 opted-out record(s)" in version["message"]
    records = api.get(
        f"/api/v1/artifacts/{DATASET}/versions/2/records",
        params={"file": "data/train.jsonl", "limit": 100},
    ).json()["records"]
    assert len(records) == 28
    assert not any(PASSAGE in json.dumps(r) for r in records)
    code, out, err = run(
        capsys,
        "index",
        "build",
        f"{DATASET}@2",
        "-p",
        "proj-1",
        "--vocab-size",
        "400",
        "--exact-only",
        "--watch",
    )
    assert code == 0 and "succeeded" in out, out + err
    as_person(monkeypatch, demo, novelist)
    found = api.get(
        "/api/v1/search", params={"q": PASSAGE, "dataset": f"{DATASET}@2"}, headers=me
    ).json()
    assert found["count"] == 0 and found["opted_out"] == 0
    assert found["datasets"][0]["index"] == "datasets/proj-1/coastal-stories-index@2"
    found = api.get(
        "/api/v1/search", params={"q": "Amina walked", "dataset": f"{DATASET}@2"}, headers=me
    ).json()
    assert found["count"] == 28

    # The opt-out lists the released model trained on the data before it, on the API and
    # the portal.
    shown = api.get(f"/api/v1/optouts/{optout_id}").json()
    assert [m["model"] for m in shown["models"]] == [f"{MODEL}@1"]
    assert shown["value"] is None  # the public does not see what it names
    page = text_of(api.get(f"/optouts/{optout_id}").text)
    assert f"{MODEL}@1" in page and "before the opt-out" in page
