"""The artifact pages in a real browser (Chromium, JavaScript off) against a live facility: a
dataset and a model trained on it, pushed through the API, then browsed as a person would."""

from __future__ import annotations

import time

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
    # Down to the sources and licences its training records state themselves.
    assert "Its records come from radio-1, under CC-BY-4.0" in upstream.inner_text()
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


def _publish_records(url: str, token: str) -> str:
    from tests.artifacts.test_dataset_rows import files

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as api:
        repo = make_repo(api, headers, name="street-sounds", project="speech-lab",
                         description="Images, audio and video with their sources")  # fmt: skip
        source = {"name": "archive", "url": "https://archive.example", "license": "CC-BY-SA-4.0"}
        answer = push(api, headers, repo, files(), licenses=["CC-BY-SA-4.0"], sources=[source])
        assert answer.status_code == 201, answer.text
    return repo


def _media_state(page, selector: str, expression: str, wanted: int) -> int:
    """Poll a media element's property until it reaches `wanted` (media load on their own;
    the page runs no script, the test's probe runs in Playwright's own world)."""
    value = -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        value = page.locator(selector).evaluate(expression)
        if value >= wanted:
            break
        page.wait_for_timeout(100)
    return value


def test_record_viewer_shows_an_image_audio_and_video_with_their_sources(
    browser_page, live_server, screenshot
):
    _publish_records(live_server.url, live_server.operator_token)
    page = browser_page
    page.goto("/artifacts/datasets/speech-lab/street-sounds/versions/1")
    page.locator("#record-files").get_by_role("link", name="shards/train-000000.tar").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Records of shards/train-000000.tar"
    records = page.get_by_role("table", name="Records")
    assert "https://photos.example/1" in records.inner_text()
    screenshot(page, "records")

    # An image record: the picture loads, and its sidecar names its source and licence.
    records.get_by_role("link", name="Record 0", exact=True).click()
    assert "Record 0" in page.get_by_role("heading", level=1).inner_text()
    image = page.get_by_role("img", name="Image png of record 0")
    assert image.is_visible()
    assert _media_state(page, "img", "e => e.complete ? e.naturalWidth : 0", 1) == 8
    assert page.locator("#record-source").inner_text().startswith("https://photos.example/1")
    assert "CC0-1.0" in page.locator("#record-license").inner_text()
    assert "Stated by the record itself." in page.locator("#record-license").inner_text()
    screenshot(page, "image-record")

    # An audio record: a player whose metadata loads; the licence falls back to the version's.
    page.get_by_role("link", name="Record 1").click()
    audio = page.locator("audio")
    assert audio.count() == 1 and audio.get_attribute("controls") is not None
    assert _media_state(page, "audio", "e => e.readyState", 1) >= 1
    assert page.locator("audio").evaluate("e => e.duration") == pytest.approx(0.5, abs=0.05)
    license_ = page.locator("#record-license").inner_text()
    assert "CC-BY-SA-4.0" in license_ and "the version's licence applies" in license_
    screenshot(page, "audio-record")

    # A video record: a player whose first frame decodes.
    page.get_by_role("link", name="Record 2").click()
    video = page.locator("video")
    assert video.count() == 1 and video.get_attribute("controls") is not None
    assert _media_state(page, "video", "e => e.readyState", 2) >= 2
    assert video.evaluate("e => [e.videoWidth, e.videoHeight]") == [32, 32]
    assert "https://archive.example" in page.locator("#record-source").inner_text()
    screenshot(page, "video-record")
