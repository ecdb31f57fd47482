"""The artifacts pages: browse, a version with card, files, licences, lineage and signature
status; private repositories stay hidden from the public."""

from __future__ import annotations

from tests.artifacts.helpers import push, safetensors_bytes
from tests.artifacts.test_api import TEXT, make_repo, researcher  # noqa: F401


def test_browse_and_version_page(client, operator):
    data = make_repo(client, operator, name="swahili-text", project="speech-lab",
                     description="Radio transcripts")  # fmt: skip
    source = {"name": "radio-1", "url": "https://radio.example", "license": "CC-BY-4.0"}
    push(client, operator, data, {"train.jsonl": TEXT}, licenses=["CC-BY-4.0"], sources=[source])
    model = make_repo(client, operator, kind="model", name="tiny", project="speech-lab")
    card = (
        b"---\nlicense: apache-2.0\n---\n# Tiny <script>alert(1)</script>\n\n"
        b"A **one-layer** model. [Read more](javascript:alert(2)), [the paper](https://arxiv.org)\n"
    )
    response = push(
        client, operator, model, {"README.md": card, "model.safetensors": safetensors_bytes()},
        lineage=[{"ref": f"{data}@1", "relation": "trained_on"}], job="job-9",
        licenses=["GPL-3.0-only", "CC-BY-NC-4.0"],
    )  # fmt: skip
    assert response.status_code == 201, response.text

    page = client.get("/artifacts")
    assert page.status_code == 200
    assert "speech-lab/swahili-text" in page.text and "speech-lab/tiny" in page.text
    only_models = client.get("/artifacts?kind=model").text
    assert "speech-lab/tiny" in only_models and "swahili-text" not in only_models
    assert "swahili-text" in client.get("/artifacts?q=radio").text

    repo = client.get("/artifacts/models/speech-lab/tiny", follow_redirects=False)
    assert repo.status_code == 303 and repo.headers["location"].endswith("/versions/1")
    html = client.get("/artifacts/models/speech-lab/tiny/versions/1").text
    assert "Signed by the facility" in html
    assert "model.safetensors" in html and "job-9" in html
    assert "datasets/speech-lab/swahili-text@1" in html and "source: radio-1" in html
    assert "incompatible licences" in html.lower()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    # The card is rendered, not shown as raw Markdown, and sanitized: its heading sits below
    # the page's, raw HTML stays text, a javascript: link is not a link.
    body = html[html.index('class="card-body"') :]
    assert "<h3>Tiny &lt;script&gt;alert(1)&lt;/script&gt;</h3>" in body and "# Tiny" not in body
    assert "<strong>one-layer</strong>" in body and '<a href="https://arxiv.org">' in body
    assert 'href="javascript:' not in html
    down = client.get("/artifacts/datasets/speech-lab/swahili-text/versions/1").text
    assert "models/speech-lab/tiny@1" in down and "Croissant 1.1" in down


def test_private_repository_pages_are_not_found_for_the_public(client, operator):
    repo = make_repo(client, operator, name="backroom", project="speech-lab", visibility="project")
    push(client, operator, repo, {"a.txt": b"x"})
    assert client.get("/artifacts/datasets/speech-lab/backroom/versions/1").status_code == 404
    assert "backroom" not in client.get("/artifacts").text


def test_bad_portal_input_is_a_page_not_a_500(client):
    for url in (
        "/artifacts/weights/a/b",
        "/artifacts/models/a/b",
        "/artifacts/models/a/b/versions/1",
        "/artifacts?kind=weights",
        "/artifacts?q=%00",
    ):
        response = client.get(url)
        assert 400 <= response.status_code < 500, url
        assert response.headers["content-type"].startswith("text/html")


def test_record_pages_show_text_media_and_provenance(client, researcher):  # noqa: F811
    from tests.artifacts.test_dataset_rows import files

    h = researcher["headers"]
    repo = make_repo(client, h, name="mixed")
    source = {"name": "radio archive", "url": "https://radio.example", "license": "CC-BY-SA-4.0"}
    answer = push(client, h, repo, files(), licenses=["CC-BY-SA-4.0"], sources=[source])
    assert answer.status_code == 201, answer.text
    base = f"/artifacts/{repo}/versions/1"
    version = client.get(base).text
    assert "Records" in version and "records?file=shards/train-000000.tar" in version

    listing = client.get(f"{base}/records", params={"file": "data/train.jsonl"})
    assert listing.status_code == 200
    assert "habari ya asubuhi" in listing.text and "version's" in listing.text
    shard = {"file": "shards/train-000000.tar"}
    page = client.get(f"{base}/records/0", params=shard)
    assert page.status_code == 200 and "media-src 'self'" in page.headers["content-security-policy"]
    assert '<img id="image-' in page.text and "https://photos.example/1" in page.text
    assert "Stated by the record itself." in page.text
    audio = client.get(f"{base}/records/1", params=shard).text
    assert "<audio" in audio and "the version's licence applies" in audio
    video = client.get(f"{base}/records/2", params=shard).text
    assert "<video" in video and 'rel="prev"' in video and 'rel="next"' not in video
    assert 'rel="next"' in audio

    for params, status in (({"file": "data/train.jsonl"}, 404), ({"file": "../x"}, 422)):
        bad = client.get(f"{base}/records/7", params=params)
        assert bad.status_code == status and bad.headers["content-type"].startswith("text/html")


def test_record_pages_of_a_project_repository_are_not_found_for_the_public(client, operator):
    repo = make_repo(client, operator, name="closed", project="speech-lab", visibility="project")
    push(client, operator, repo, {"a.jsonl": b'{"text": "x"}\n'})
    got = client.get(f"/artifacts/{repo}/versions/1/records/0", params={"file": "a.jsonl"})
    assert got.status_code == 404 and '"text"' not in got.text


def test_declared_sources_show_whatever_they_leave_out_and_nothing_else_is_taken(
    client,
    researcher,  # noqa: F811
):
    """A source needs only a name: a page (the version's, and every page whose lineage
    reaches it) shows what was declared, and a source that says more than a name, an address
    and a licence is refused, so nothing a page does not expect is ever stored."""
    h = researcher["headers"]
    data = make_repo(client, h)
    made = push(client, h, data, {"train.jsonl": TEXT}, sources=[{"name": "oral history"}])
    assert made.status_code == 201, made.text
    model = make_repo(client, h, kind="model", name="tiny")
    made = push(client, h, model, {"model.safetensors": safetensors_bytes()},
                lineage=[{"ref": f"{data}@1", "relation": "trained_on"}])  # fmt: skip
    assert made.status_code == 201, made.text
    for page in (f"/artifacts/{data}/versions/1", f"/artifacts/{model}/versions/1"):
        shown = client.get(page)
        assert shown.status_code == 200 and "oral history" in shown.text, page
    for source, field in (
        ({"name": "x", "licence": "MIT"}, "licence"),
        ({"name": "x", "url": "javascript:alert(1)"}, "url"),
        ({"url": "https://radio.example"}, "name"),
        ({"name": ""}, "name"),
    ):
        refused = push(client, h, data, {"b.jsonl": TEXT}, sources=[source])
        assert refused.status_code == 422 and field in refused.json()["detail"], refused.text
    assert client.get(f"/api/v1/artifacts/{data}").json()["latest"] == 1


def test_models_and_datasets_are_where_people_type_them(client, researcher):  # noqa: F811
    h = researcher["headers"]
    push(client, h, make_repo(client, h), {"train.jsonl": TEXT})
    for path, kind in (("/models", "model"), ("/datasets", "dataset")):
        moved = client.get(path, follow_redirects=False)
        assert moved.status_code == 308 and moved.headers["location"] == f"/artifacts?kind={kind}"
    assert "/artifacts/datasets/" in client.get("/datasets").text
