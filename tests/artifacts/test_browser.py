"""The artifact pages in a real browser (Chromium, JavaScript off) against a live facility: a
dataset and a model trained on it, pushed through the API, then browsed as a person would."""

from __future__ import annotations

import httpx
import pytest

from tests.artifacts.helpers import push, safetensors_bytes
from tests.artifacts.test_api import TEXT, make_repo

pytestmark = pytest.mark.browser


def _publish(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as api:
        data = make_repo(api, headers, name="swahili-text", project="speech-lab",
                         description="Radio transcripts")  # fmt: skip
        source = {"name": "radio-1", "url": "https://radio.example", "license": "CC-BY-4.0"}
        answer = push(api, headers, data, {"train.jsonl": TEXT}, licenses=["CC-BY-4.0"],
                      sources=[source])  # fmt: skip
        assert answer.status_code == 201, answer.text
        model = make_repo(api, headers, kind="model", name="tiny", project="speech-lab")
        card = b"---\nlicense: apache-2.0\nlanguage: sw\n---\n# Tiny\n\nA tiny Swahili model.\n"
        answer = push(
            api, headers, model,
            {"README.md": card, "model.safetensors": safetensors_bytes({"job": "job-9"})},
            lineage=[{"ref": f"{data}@1", "relation": "trained_on"}], job="job-9",
            licenses=["Apache-2.0"],
        )  # fmt: skip
        assert answer.status_code == 201, answer.text


def test_browse_then_read_a_version_and_follow_its_lineage(browser_page, live_server, screenshot):
    _publish(live_server.url, live_server.operator_token)
    page = browser_page

    response = page.goto("/artifacts")
    assert response is not None and response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "Open models and datasets"
    repos = page.get_by_role("table", name="Repositories")
    assert repos.get_by_role("link", name="speech-lab/swahili-text").is_visible()
    assert repos.get_by_role("link", name="speech-lab/tiny").is_visible()
    screenshot(page, "browse")

    # The repository link lands on its latest version.
    repos.get_by_role("link", name="speech-lab/tiny").click()
    assert page.url.endswith("/artifacts/models/speech-lab/tiny/versions/1")
    assert "speech-lab/tiny" in page.get_by_role("heading", level=1).inner_text()
    status = page.locator("#signature-status")
    assert status.is_visible() and "Signed by the facility" in status.inner_text()
    card = page.locator("section", has=page.get_by_role("heading", name="Card", exact=True))
    assert card.is_visible()
    assert "A tiny Swahili model." in card.inner_text() and "apache-2.0" in card.inner_text()
    files = page.locator("section", has=page.get_by_role("heading", name="Files", exact=True))
    for name in ("README.md", "model.safetensors"):
        assert files.get_by_role("link", name=name, exact=True).is_visible()
    upstream = page.locator("#upstream")
    assert upstream.is_visible()
    assert "source: radio-1" in upstream.inner_text()
    assert "job-9" in page.locator("section", has=page.locator("#lineage")).inner_text()
    screenshot(page, "model-version")

    # Down the lineage: the dataset names the model built from it.
    upstream.get_by_role("link", name="datasets/speech-lab/swahili-text@1").click()
    assert page.url.endswith("/artifacts/datasets/speech-lab/swahili-text/versions/1")
    assert "Signed by the facility" in page.locator("#signature-status").inner_text()
    assert (
        page.locator("#downstream")
        .get_by_role("link", name="models/speech-lab/tiny@1")
        .is_visible()
    )
    assert page.get_by_role("link", name="Croissant 1.1").is_visible()
    screenshot(page, "dataset-version")
