"""Training-data search in a real browser (Chromium, JavaScript off) against a live facility:
a novelist searches a public model's training data from its page, finds her passage with its
sources, opens a record, files an opt-out through the form, sees the model trained on it
before, and finds search honouring it at once; then traces an output from the model page."""

from __future__ import annotations

import httpx
import pytest

from tests.artifacts.helpers import push, safetensors_bytes
from tests.helpers import auth, person_with_token
from tests.portal.helpers import sign_in_browser
from tests.portal.test_datasearch_pages import BOOK, PASSAGE, built_index, jsonl, story_rows

pytestmark = pytest.mark.browser


def _publish(api: httpx.Client, headers, kind: str, name: str, files, **fields) -> str:
    made = api.post("/api/v1/artifacts/repos", json={"kind": kind, "name": name}, headers=headers)
    assert made.status_code == 201, made.text
    repo = f"{kind}s/{made.json()['repo_id']}"
    pushed = push(api, headers, repo, files, **fields)
    assert pushed.status_code == 201, pushed.text
    return f"{repo}@1"


@pytest.fixture
def published(live_server, tmp_path) -> dict[str, str]:
    """A public dataset, a model trained on it and the dataset's index; a novelist's token."""
    api = httpx.Client(base_url=live_server.url, timeout=30)
    operator = auth(live_server.operator_token)
    data = jsonl(story_rows())
    dataset = _publish(api, operator, "dataset", "stories", {"data/train.jsonl": data},
                       licenses=["CC-BY-4.0"])  # fmt: skip
    model = _publish(api, operator, "model", "storyteller",
                     {"model.safetensors": safetensors_bytes()},
                     lineage=[{"ref": dataset, "relation": "trained_on"}])  # fmt: skip
    _publish(api, operator, "dataset", "stories-index", built_index(tmp_path / "index", data),
             lineage=[{"ref": dataset, "relation": "indexes"}])  # fmt: skip
    _, novelist = person_with_token(api, operator, "Francesca Conti")
    api.close()
    return {"dataset": dataset, "model": model, "novelist": novelist["Authorization"][7:]}


def _page_of(ref: str) -> str:
    repo, _, number = ref.partition("@")
    return f"/{'artifacts/' + repo}/versions/{number}"


def test_search_from_the_model_page_then_opt_out(browser_page, published, screenshot):
    page = browser_page
    sign_in_browser(page, published["novelist"])
    page.goto(_page_of(published["model"]))
    page.get_by_label("Search its training data").fill(PASSAGE)
    page.get_by_role("button", name="Search", exact=True).first.click()
    page.wait_for_url("**/search?**")
    results = page.locator("#results")
    assert results.inner_text().startswith(
        f"2 occurrences in the training data of {published['model']}"
    )
    hits = page.locator("ol.hits > li")
    assert hits.count() == 2
    assert all(PASSAGE in mark for mark in page.locator("ol.hits mark").all_inner_texts())
    # The record's markup is shown as text, never run or rendered.
    assert "<script>alert(1)</script>" in hits.first.inner_text()
    assert hits.first.get_by_role("link", name=f"{BOOK}/chapter-1").is_visible()
    screenshot(page, "search")

    hits.first.get_by_role("link", name="Record 3").click()
    page.wait_for_url("**/records/3?file=data/train.jsonl")
    assert PASSAGE in page.locator("pre.record-text").first.inner_text()

    # She files an opt-out through the form.
    page.goto("/optouts")
    page.get_by_label("A passage of text").check()
    page.get_by_label("The passage, digest or pattern").fill(PASSAGE)
    page.get_by_role("button", name="File the opt-out").click()
    page.wait_for_url("**/optouts/1?filed=1")
    assert "it matched 2 records" in page.get_by_role("status").inner_text()
    models = page.locator("#models-trained")
    assert models.get_by_role("link", name=published["model"]).is_visible()
    assert "trained before the opt-out" in models.inner_text()
    screenshot(page, "optout")

    # Search honours it at once.
    page.goto(_page_of(published["model"]))
    page.get_by_label("Search its training data").fill(PASSAGE)
    page.get_by_role("button", name="Search", exact=True).first.click()
    page.wait_for_url("**/search?**")
    assert (
        page.locator("#opted-out").inner_text().startswith("2 more in opted-out records, not shown")
    )
    assert page.locator("ol.hits").count() == 0
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "search-opted-out-phone")


def test_trace_an_output_from_the_model_page(browser_page, published, screenshot):
    page = browser_page
    page.goto(_page_of(published["model"]))
    page.get_by_text("Trace an output of this model").click()  # a <details>: no script needed
    page.get_by_label("Trace an output").fill(f"He wrote that {PASSAGE} one night.")
    page.get_by_role("button", name="Trace", exact=True).click()
    page.wait_for_url("**/trace")
    assert "lighthouse keeper" in page.locator("#traced-text mark").first.inner_text()
    first = page.locator("#spans tbody tr").first
    assert first.get_by_role("link", name="record 3").is_visible()
    screenshot(page, "trace")
