"""The record viewer's API, on SQLite and PostgreSQL: a dataset version's JSONL and Parquet
rows and WebDataset samples (image, audio, video), each with its own source and licence or
the version's (and saying which); media served with their types, byte ranges, and access
rules; bad input a clear 4xx, never a 500."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from commonlab.artifacts import dataset_rows
from commonlab.artifacts.store import ObjectStore
from tests.artifacts import media
from tests.artifacts.helpers import push
from tests.artifacts.test_api import cleared, make_repo, researcher  # noqa: F401
from tests.helpers import person_with_token, problem, record_entries

PNG, WAV = media.png(), media.wav()
JSONL = (
    b'{"text": "habari ya asubuhi", "source": "radio-1", "license": "cc-by-4.0"}\n'
    b"\n"
    b'{"text": "mvua inanyesha leo", "url": "https://radio.example/2"}\n'
    b'{"text": "no source here"}\n'
)


def files() -> dict[str, bytes]:
    return {
        "data/train.jsonl": JSONL,
        "data/code.parquet": media.parquet(
            [
                {
                    "code": "print('habari')",
                    "language": "python",
                    "source": "git-a",
                    "license": "MIT",
                },
                {"code": "fn main() {}", "language": "rust", "source": "git-b", "license": None},
                {"code": "SELECT 1;", "language": "sql", "source": None, "license": "Apache-2.0"},
            ]
        ),
        "data/images.parquet": media.parquet(
            [{"caption": "a red square", "image": {"bytes": PNG, "path": "red.png"}}]
        ),
        "shards/train-000000.tar": media.shard(
            [
                {
                    "__key__": "s000",
                    "png": PNG,
                    "txt": "a red square",
                    "json": {"source": "https://photos.example/1", "license": "CC0-1.0"},
                },
                {
                    "__key__": "s001",
                    "wav": WAV,
                    "txt": "a tone",
                    "json": {"source": "https://sounds.example/tone"},
                },
                {"__key__": "s002", "webm": media.webm(), "json": {"license": "CC-BY-4.0"}},
            ]
        ),
        "README.md": b"---\nlicense: cc-by-sa-4.0\n---\n# Mixed\n",
    }


@pytest.fixture
def dataset(client, researcher):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, name="mixed")
    source = {"name": "radio archive", "url": "https://radio.example", "license": "CC-BY-SA-4.0"}
    answer = push(client, h, repo, files(), licenses=["CC-BY-SA-4.0"], sources=[source])
    assert answer.status_code == 201, answer.text
    return f"/api/v1/artifacts/{repo}/versions/1"


def test_record_files_and_jsonl_rows_with_their_provenance(client, dataset):
    listed = client.get(f"{dataset}/record-files").json()["files"]
    assert {(f["path"], f["format"]) for f in listed} == {
        ("data/train.jsonl", "jsonl"),
        ("data/code.parquet", "parquet"),
        ("data/images.parquet", "parquet"),
        ("shards/train-000000.tar", "webdataset"),
    }
    page = client.get(f"{dataset}/records", params={"file": "data/train.jsonl"}).json()
    assert page["total"] == 3 and page["has_more"] is False
    first, second, third = page["records"]
    assert first["preview"] == "habari ya asubuhi"
    assert (first["source"], first["source_from"]) == ("radio-1", "record")
    assert (first["license"], first["license_from"]) == ("CC-BY-4.0", "record")
    assert (second["source"], second["source_from"]) == ("https://radio.example/2", "record")
    # No licence of its own: the version's, and it says so.
    assert (second["license"], second["license_from"]) == ("CC-BY-SA-4.0", "version")
    assert (third["source"], third["source_from"]) == ("https://radio.example", "version")
    two = client.get(f"{dataset}/records", params={"file": "data/train.jsonl", "limit": 2})
    # The line index written at publish knows the count before the page reaches the end.
    assert two.json()["has_more"] is True and two.json()["total"] == 3
    past = client.get(f"{dataset}/records", params={"file": "data/train.jsonl", "offset": 10})
    assert past.status_code == 200 and past.json()["records"] == []

    record = client.get(f"{dataset}/records/1", params={"file": "data/train.jsonl"}).json()
    assert record["has_next"] is True
    last = client.get(f"{dataset}/records/2", params={"file": "data/train.jsonl"}).json()
    assert last["has_next"] is False
    text = next(m for m in record["members"] if m["name"] == "text")
    assert text["text"] == "mvua inanyesha leo" and text["kind"] == "text"
    served = client.get(text["url"])
    assert served.status_code == 200 and served.text == "mvua inanyesha leo"
    assert served.headers["content-type"].startswith("text/plain")


def test_parquet_rows_across_row_groups_and_media_in_a_column(client, dataset):
    page = client.get(
        f"{dataset}/records", params={"file": "data/code.parquet", "offset": 1, "limit": 2}
    ).json()
    assert page["total"] == 3 and [r["index"] for r in page["records"]] == [1, 2]
    rust, sql = page["records"]
    assert rust["preview"] == "fn main() {}" and rust["license_from"] == "version"
    assert (sql["license"], sql["source_from"]) == ("Apache-2.0", "version")

    record = client.get(f"{dataset}/records/0", params={"file": "data/images.parquet"}).json()
    assert record["has_next"] is False
    image = next(m for m in record["members"] if m["name"] == "image")
    assert (image["kind"], image["media_type"]) == ("image", "image/png")
    got = client.get(image["url"])
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"


def test_webdataset_samples_show_image_audio_video_with_sidecar_provenance(client, dataset):
    shard = {"file": "shards/train-000000.tar"}
    page = client.get(f"{dataset}/records", params=shard).json()
    assert page["total"] == 3
    assert [r["kinds"] for r in page["records"]] == [["image"], ["audio"], ["video"]]
    assert [r["key"] for r in page["records"]] == ["s000", "s001", "s002"]
    image, audio, video = page["records"]
    assert (image["source"], image["license"]) == ("https://photos.example/1", "CC0-1.0")
    assert image["source_from"] == image["license_from"] == "record"
    assert audio["license_from"] == "version" and audio["source_from"] == "record"
    assert video["source_from"] == "version" and video["license"] == "CC-BY-4.0"

    for index, member, media_type in ((0, "png", "image/png"), (1, "wav", "audio/wav"),
                                      (2, "webm", "video/webm")):  # fmt: skip
        record = client.get(f"{dataset}/records/{index}", params=shard).json()
        found = next(m for m in record["members"] if m["name"] == member)
        assert found["media_type"] == media_type
        got = client.get(found["url"])
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == media_type
        assert got.headers["content-disposition"] == "inline"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert int(got.headers["content-length"]) == found["size"] == len(got.content)
    wav = client.get(f"{dataset}/records/1/media", params={**shard, "member": "wav"})
    assert wav.content == WAV
    # Players seek with byte ranges.
    part = client.get(
        f"{dataset}/records/1/media", params={**shard, "member": "wav"},
        headers={"range": "bytes=4-11"},
    )  # fmt: skip
    assert part.status_code == 206 and part.content == WAV[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(WAV)}"
    tail = client.get(
        f"{dataset}/records/1/media", params={**shard, "member": "wav"},
        headers={"range": "bytes=-4"},
    )  # fmt: skip
    assert tail.status_code == 206 and tail.content == WAV[-4:]
    beyond = client.get(
        f"{dataset}/records/1/media", params={**shard, "member": "wav"},
        headers={"range": f"bytes={len(WAV) + 5}-"},
    )  # fmt: skip
    assert beyond.status_code == 416
    head = client.head(f"{dataset}/records/0/media", params={**shard, "member": "png"})
    assert head.status_code == 200 and head.headers["content-length"] == str(len(PNG))
    sidecar = client.get(f"{dataset}/records/0", params=shard).json()
    assert sidecar["has_next"] is True
    assert client.get(f"{dataset}/records/2", params=shard).json()["has_next"] is False
    assert json_member(sidecar)["text"].startswith('{"source"')


def json_member(record):
    return next(m for m in record["members"] if m["kind"] == "json")


def test_html_in_a_shard_is_never_served_inline(client, researcher):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, name="hostile")
    tar = media.shard([{"__key__": "x", "html": "<script>alert(1)</script>", "svg": "<svg/>"}])
    assert push(client, h, repo, {"s.tar": tar}).status_code == 201
    base = f"/api/v1/artifacts/{repo}/versions/1/records/0"
    kinds = {
        m["name"]: m["kind"] for m in client.get(base, params={"file": "s.tar"}).json()["members"]
    }
    assert kinds == {"html": "text", "svg": "binary"}
    html = client.get(f"{base}/media", params={"file": "s.tar", "member": "html"})
    assert html.headers["content-type"] == "text/plain; charset=utf-8"
    assert html.headers["content-disposition"] == "inline"
    svg = client.get(f"{base}/media", params={"file": "s.tar", "member": "svg"})
    assert svg.headers["content-type"] == "application/octet-stream"
    assert svg.headers["content-disposition"].startswith("attachment")
    for got in (html, svg):
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("url", "params", "status", "words"),
    [
        ("records/3", {"file": "data/train.jsonl"}, 404, "holds 3 records"),
        ("records/3", {"file": "shards/train-000000.tar"}, 404, "holds 3 records"),
        ("records/9", {"file": "data/code.parquet"}, 404, "holds 3 records"),
        ("records/-1", {"file": "data/train.jsonl"}, 422, ""),
        ("records/0", {"file": "nope.jsonl"}, 404, "has no file"),
        ("records/0", {"file": "../data/train.jsonl"}, 422, "'..'"),
        ("records/0", {"file": "/etc/passwd"}, 422, "relative"),
        ("records/0", {"file": "README.md"}, 422, "JSONL, Parquet or WebDataset"),
        ("records/0", {}, 422, "file"),
        ("records", {"file": "data/train.jsonl", "limit": 1000}, 422, ""),
        ("records/0/media", {"file": "shards/train-000000.tar", "member": "../../x"}, 404,
         "no member"),
        ("records/0/media", {"file": "shards/train-000000.tar", "member": "jpg"}, 404,
         "it has"),
        ("records/0/media", {"file": "shards/train-000000.tar"}, 422, "member"),
    ],
)  # fmt: skip
def test_bad_record_requests_are_clear_4xx(client, dataset, url, params, status, words):
    got = client.get(f"{dataset}/{url}", params=params)
    assert got.status_code == status, got.text
    assert words in problem(got)["detail"]


SHARD = media.shard([{"__key__": "a", "png": PNG * 20}])


def bad_crc(gz: bytes) -> bytes:
    """A whole gzip stream whose trailer's CRC-32 is wrong: its bytes decompress, unsound."""
    return gz[:-8] + bytes(b ^ 0xFF for b in gz[-8:-4]) + gz[-4:]


def broken_parquet() -> bytes:
    """Its footer and schema read (so it publishes), its data pages do not."""
    data = bytearray(media.parquet([{"text": "x" * 200 + str(i)} for i in range(6)]))
    for i in range(4, 300):
        data[i] ^= 0x5A
    return bytes(data)


@pytest.mark.parametrize(
    ("path", "data", "words"),
    [
        ("bad.tar", os.urandom(3000), "not a readable WebDataset tar shard"),
        ("half.tar", media.shard([{"__key__": "a", "png": PNG * 20}])[:700], "tar"),
        ("bad.parquet", broken_parquet(), "a row group of this Parquet file is broken"),
        ("bad.jsonl", b'{"text": "fine"}\n{not json\n', "line 2 is not JSON"),
        ("bad.tar.gz", os.urandom(3000), "not a readable WebDataset tar shard"),
        ("half.tgz", gzip.compress(SHARD)[:-40], "not a readable WebDataset tar shard"),
        ("crc.tar.gz", bad_crc(gzip.compress(SHARD)), "CRC check failed"),
        ("plain.tar.gz", SHARD, "Not a gzipped file"),
    ],
)
def test_corrupt_record_files_are_a_clear_422(client, researcher, path, data, words):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, name="broken")
    assert push(client, h, repo, {path: data}).status_code == 201
    base = f"/api/v1/artifacts/{repo}/versions/1"
    for url in ("records", "records/1"):
        got = client.get(f"{base}/{url}", params={"file": path})
        assert got.status_code == 422, got.text
        assert words in problem(got)["detail"]


def test_records_follow_the_access_rules(client, app, operator):
    member_person, member = person_with_token(client, operator, name="Project Member")
    repo = make_repo(client, operator, name="closed", project="speech-lab", visibility="project")
    assert push(client, operator, repo, files()).status_code == 201
    base = f"/api/v1/artifacts/{repo}/versions/1"
    shard = {"file": "shards/train-000000.tar"}
    # The public cannot tell the repository exists.
    assert client.get(f"{base}/records", params=shard).status_code == 404
    assert (
        client.get(f"{base}/records/0/media", params={**shard, "member": "png"}).status_code == 404
    )
    _, outsider = person_with_token(client, operator, name="Not A Member")
    assert client.get(f"{base}/records", params=shard, headers=outsider).status_code == 404
    del member_person, member

    # CL-2: readable by the cleared owner, and every read is recorded before it is served.
    person, h = cleared(client, operator, 2)
    controlled = make_repo(client, h, name="controlled", visibility="private", level=2)
    assert (
        push(client, h, controlled, {"s.tar": files()["shards/train-000000.tar"]}).status_code
        == 201
    )
    cbase = f"/api/v1/artifacts/{controlled}/versions/1"
    got = client.get(f"{cbase}/records/0/media", params={"file": "s.tar", "member": "png"},
                     headers=h)  # fmt: skip
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["cache-control"] == "private, no-store"
    downloads = record_entries(client, app, type="artifacts:file:downloaded")
    assert downloads and downloads[-1]["actor"]["id"] == person["pseudonym"]

    # CL-3: never served, even to the cleared owner; the refusal is recorded.
    _, h3 = cleared(client, operator, 3)
    contained = make_repo(client, h3, name="contained", visibility="private", level=3)
    assert (
        push(client, h3, contained, {"s.tar": files()["shards/train-000000.tar"]}).status_code
        == 201
    )
    c3 = f"/api/v1/artifacts/{contained}/versions/1"
    for url, params in (("records", {"file": "s.tar"}), ("records/0", {"file": "s.tar"}),
                        ("records/0/media", {"file": "s.tar", "member": "png"})):  # fmt: skip
        refused = client.get(f"{c3}/{url}", params=params, headers=h3)
        assert refused.status_code == 403, refused.text
    assert record_entries(client, app, type="artifacts:file:download-refused")


def test_models_have_no_records(client, researcher):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, kind="model", name="m")
    assert push(client, h, repo, {"data.jsonl": JSONL}).status_code == 201
    got = client.get(f"/api/v1/artifacts/{repo}/versions/1/records", params={"file": "data.jsonl"})
    assert got.status_code == 404 and "dataset" in problem(got)["detail"]


def test_publishing_reads_what_records_say_into_flags_lineage_and_prov(client, researcher):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, name="mixed")
    noncommercial = b'{"text": "x", "source": "forum", "license": "CC-BY-NC-4.0"}\n'
    data = {**files(), "data/forum.jsonl": noncommercial, "bad.tar": os.urandom(2000)}
    version = push(client, h, repo, data, licenses=["CC-BY-SA-4.0"]).json()
    meta = {f["path"]: f["meta"] for f in version["files"]}
    shard = meta["shards/train-000000.tar"]["records"]
    assert shard["records"] == 3 and shard["complete"] is True
    assert shard["licenses"] == {"CC-BY-4.0": 1, "CC0-1.0": 1}
    assert shard["without_license"] == 1 and shard["distinct_sources"] == 2
    assert meta["data/train.jsonl"]["records"]["sources"] == [
        ["https://radio.example/2", 1], ["radio-1", 1]
    ]  # fmt: skip
    assert "not a readable WebDataset tar shard" in meta["bad.tar"]["records_error"]
    # A record's non-commercial licence cannot be combined with the version's share-alike one.
    assert any(
        "CC-BY-NC-4.0" in flag and "stated by records" in flag for flag in version["license_flags"]
    ), version["license_flags"]

    model = make_repo(client, h, kind="model", name="tiny")
    lineage = [{"ref": f"{repo}@1", "relation": "trained_on"}]
    assert push(client, h, model, {"w.bin": b"w"}, lineage=lineage).status_code == 201
    up = client.get(f"/api/v1/artifacts/{model}/versions/1/lineage").json()
    node = next(n for n in up["nodes"] if n["ref"] == f"{repo}@1")
    assert "https://photos.example/1" in node["record_sources"]
    assert node["record_licenses"]["CC-BY-NC-4.0"] == 1
    prov = client.get(f"/api/v1/artifacts/{model}/versions/1/prov").json()
    assert "CC-BY-NC-4.0" in prov["entity"][f"{repo}@1"]["commonlab:recordLicenses"]
    page = client.get(f"/artifacts/{model}/versions/1").text
    assert "Its records come from" in page and "https://photos.example/1" in page
    dataset_page = client.get(f"/artifacts/{repo}/versions/1").text
    assert "3 records; licences stated by records: CC-BY-4.0 (1), CC0-1.0 (1)" in dataset_page


def test_croissant_describes_the_media_inside_a_shard(client, dataset):
    """The shard's images, audio and video are file sets contained in it, each with a record
    set of its content, and mlcroissant validated the whole description at publish."""
    doc = client.get(f"{dataset}/croissant").json()
    sets = {d["@id"]: d for d in doc["distribution"] if d["@type"] == "cr:FileSet"}
    shard = "shards/train-000000.tar"
    assert {k: (v["includes"], v["encodingFormat"]) for k, v in sets.items()} == {
        f"{shard}/png": ("*.png", "image/png"),
        f"{shard}/txt": ("*.txt", "text/plain"),
        f"{shard}/json": ("*.json", "application/json"),
        f"{shard}/wav": ("*.wav", "audio/wav"),
        f"{shard}/webm": ("*.webm", "video/webm"),
    }
    assert all(v["containedIn"] == {"@id": shard} for v in sets.values())
    types = {
        field["source"]["fileSet"]["@id"]: field["dataType"]
        for rs in doc["recordSet"]
        for field in rs["field"]
        if "fileSet" in field["source"] and field["name"] == "content"
    }
    assert types[f"{shard}/png"] == "sc:ImageObject"
    assert types[f"{shard}/wav"] == "sc:AudioObject"
    assert types[f"{shard}/webm"] == "sc:VideoObject"


# Compressed shards ----------------------------------------------------------------------------

LONG_WAV = media.wav(seconds=70)  # over a megabyte: unpacked into a spool, not kept in hand


def gz_shard() -> bytes:
    return gzip.compress(
        media.shard(
            [
                {
                    "__key__": "s000",
                    "png": PNG,
                    "txt": "a red square",
                    "json": {"source": "https://photos.example/1", "license": "CC0-1.0"},
                },
                {"__key__": "s001", "wav": LONG_WAV, "json": {"source": "https://sounds.example"}},
            ]
        )
    )


def test_a_gzipped_shard_reads_serves_and_summarises_like_a_tar(client, researcher):  # noqa: F811
    h = researcher["headers"]
    repo = make_repo(client, h, name="packed")
    answer = push(client, h, repo, {"s.tar.gz": gz_shard(), "t.tgz": gz_shard()},
                  licenses=["CC-BY-4.0"])  # fmt: skip
    assert answer.status_code == 201, answer.text
    summary = {f["path"]: f["meta"]["records"] for f in answer.json()["files"]}["s.tar.gz"]
    assert (summary["records"], summary["complete"]) == (2, True)
    assert summary["licenses"] == {"CC0-1.0": 1} and summary["distinct_sources"] == 2
    base = f"/api/v1/artifacts/{repo}/versions/1"
    files = client.get(f"{base}/record-files").json()["files"]
    assert {(f["path"], f["format"]) for f in files} == {
        ("s.tar.gz", "webdataset"), ("t.tgz", "webdataset")
    }  # fmt: skip

    shard = {"file": "s.tar.gz"}
    page = client.get(f"{base}/records", params=shard).json()
    assert page["total"] == 2 and [r["kinds"] for r in page["records"]] == [["image"], ["audio"]]
    image, audio = page["records"]
    assert (image["source"], image["license"], image["license_from"]) == (
        "https://photos.example/1", "CC0-1.0", "record"
    )  # fmt: skip
    assert (audio["source_from"], audio["license"], audio["license_from"]) == (
        "record", "CC-BY-4.0", "version"
    )  # fmt: skip
    record = client.get(f"{base}/records/0", params=shard).json()
    assert next(m for m in record["members"] if m["name"] == "txt")["text"] == "a red square"
    png = client.get(next(m for m in record["members"] if m["name"] == "png")["url"])
    assert png.status_code == 200 and png.content == PNG
    assert png.headers["content-type"] == "image/png"

    wav = {**shard, "member": "wav"}
    whole = client.get(f"{base}/records/1/media", params=wav)
    assert whole.status_code == 200 and whole.content == LONG_WAV
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["content-length"] == str(len(LONG_WAV))
    part = client.get(f"{base}/records/1/media", params=wav, headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == LONG_WAV[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(LONG_WAV)}"
    tail = client.get(f"{base}/records/1/media", params=wav, headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == LONG_WAV[-10:]
    beyond = client.get(f"{base}/records/1/media", params=wav,
                        headers={"range": f"bytes={len(LONG_WAV)}-"})  # fmt: skip
    assert beyond.status_code == 416
    head = client.head(f"{base}/records/1/media", params=wav)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(LONG_WAV))
    assert client.get(f"{base}/records/2", params=shard).status_code == 404

    tgz = client.get(f"{base}/records/1/media", params={"file": "t.tgz", "member": "wav"})
    assert tgz.content == LONG_WAV

    # Croissant names the tar and its compression; mlcroissant validated it at publish.
    doc = client.get(f"{base}/croissant").json()
    objects = {d["@id"]: d for d in doc["distribution"]}
    assert objects["s.tar.gz"]["encodingFormat"] == ["application/x-tar", "application/gzip"]
    assert objects["s.tar.gz/wav"]["containedIn"] == {"@id": "s.tar.gz"}
    assert objects["s.tar.gz/png"]["encodingFormat"] == "image/png"


def test_a_compressed_member_is_unpacked_once_and_only_that_one(tmp_path, monkeypatch):
    """The member asked for is spooled (bounded in memory, then a temporary file); the shard
    is never unpacked whole, and a member over MAX_UNPACKED is refused with the reason."""
    path = tmp_path / "s.tar.gz"
    path.write_bytes(gz_shard())
    got = dataset_rows.member_data(path, "s.tar.gz", 1, "wav", fallback=NOTHING)
    assert got.file is not None and got.data is None and got.size == len(LONG_WAV)
    assert got.file.read() == LONG_WAV
    got.file.close()
    small = dataset_rows.member_data(path, "s.tar.gz", 0, "png", fallback=NOTHING)
    assert small.data == PNG and small.file is None
    monkeypatch.setattr(dataset_rows, "MAX_UNPACKED", 1 << 20)
    with pytest.raises(dataset_rows.UnreadableRecords, match=r"publish it in a \.tar shard"):
        dataset_rows.member_data(path, "s.tar.gz", 1, "wav", fallback=NOTHING)


# Deep JSONL records through the line index ----------------------------------------------------

NOTHING = dataset_rows.Fallback([], [])


def deep_jsonl(count: int = 20_000) -> bytes:
    """`count` records with CRLF and LF endings, blank and whitespace-only lines between them,
    and no newline after the last."""
    out = []
    for i in range(count):
        out.append(json.dumps({"i": i, "text": f"row {i}"}).encode())
        out.append(b"\r\n" if i % 3 else b"\n")
        if i % 7 == 0:
            out.append((b"\n", b"   \r\n", b"\r\n", b"\t\n")[i % 4])
    return b"".join(out).rstrip(b"\r\n")


def line_by_line(data: bytes, index: int) -> dict:
    rows = [line for line in data.split(b"\n") if line.strip()]
    return json.loads(rows[index])


@pytest.fixture
def stored_jsonl(tmp_path):
    """A 20,000-record JSONL object in a real store, summarised (so indexed) as at publish,
    and the same bytes outside the store (no index: read from the start)."""
    store = ObjectStore(tmp_path / "objects")
    data = deep_jsonl()
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(data)
    path = store.path(store.put_file(plain).blake3)
    summary = dataset_rows.summarize(path, "d.jsonl")
    assert (summary["records"], summary["complete"]) == (20_000, True)
    return path, plain, data


def test_a_deep_jsonl_record_is_read_through_the_line_index(stored_jsonl, monkeypatch):
    path, plain, data = stored_jsonl
    index = dataset_rows.line_index_path(path)
    assert index is not None and index.is_file()
    assert index.stat().st_size < 200  # 5 entries for 20,000 records: sparse

    lines_read = []
    real_lines = dataset_rows._lines

    def counted(fh, name, line_no):
        for item in real_lines(fh, name, line_no):
            lines_read.append(item[0])
            yield item

    monkeypatch.setattr(dataset_rows, "_lines", counted)
    deep = dataset_rows.read_record(path, "d.jsonl", 19_999, fallback=NOTHING)
    assert len(lines_read) <= dataset_rows.INDEX_EVERY  # from the indexed record 16,384 on, not 0
    expected = line_by_line(data, 19_999)
    assert json.loads(next(m.text for m in deep.members if m.name == "i")) == expected["i"]
    assert next(m.text for m in deep.members if m.name == "text") == expected["text"]
    assert deep == dataset_rows.read_record(plain, "d.jsonl", 19_999, fallback=NOTHING)

    for offset in (0, 4095, 4096, 8191, 16_384, 19_990, 20_000, 10**9):
        indexed = dataset_rows.read_page(path, "d.jsonl", offset=offset, limit=20, fallback=NOTHING)
        scanned = dataset_rows.read_page(
            plain, "d.jsonl", offset=offset, limit=20, fallback=NOTHING
        )
        assert indexed.records == scanned.records and indexed.has_more == scanned.has_more
        assert indexed.total == 20_000  # known from the index, even mid-file
    assert dataset_rows.has_record(path, "d.jsonl", 19_999)
    assert not dataset_rows.has_record(path, "d.jsonl", 20_000)
    with pytest.raises(dataset_rows.RecordNotFound, match="holds 20000 records"):
        dataset_rows.read_record(path, "d.jsonl", 20_000, fallback=NOTHING)


def test_a_line_index_keeps_line_numbers_and_is_ignored_when_it_does_not_fit(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    data = deep_jsonl(9_000).replace(b'{"i": 8500,', b'{"i": 8500 oops', 1)
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(data)
    path = store.path(store.put_file(plain).blake3)
    # Past the tally a line is counted, not parsed: the file publishes, and is indexed.
    assert dataset_rows.summarize(path, "d.jsonl", limit=10)["records"] == 9_000
    index = dataset_rows.line_index_path(path)
    assert index is not None and index.is_file()
    bad_line = 1 + next(n for n, line in enumerate(data.split(b"\n")) if b"oops" in line)
    with pytest.raises(dataset_rows.UnreadableRecords) as scanned:
        dataset_rows.read_record(plain, "d.jsonl", 8500, fallback=NOTHING)
    with pytest.raises(dataset_rows.UnreadableRecords) as indexed:
        dataset_rows.read_record(path, "d.jsonl", 8500, fallback=NOTHING)
    assert indexed.value.message == scanned.value.message
    assert f"line {bad_line} is not JSON" in indexed.value.message

    # An index whose offsets are not where lines start (not these bytes): read from the start.
    raw = bytearray(index.read_bytes())
    raw[-16] ^= 0x01
    index.write_bytes(bytes(raw))
    assert dataset_rows.read_record(
        path, "d.jsonl", 8_999, fallback=NOTHING
    ) == dataset_rows.read_record(plain, "d.jsonl", 8_999, fallback=NOTHING)
    index.write_bytes(b"not an index")
    assert dataset_rows.has_record(path, "d.jsonl", 8_999)


# Files with more records than the tally reads --------------------------------------------------


def test_counts_are_exact_and_a_partial_tally_says_so(client, researcher, monkeypatch):  # noqa: F811
    monkeypatch.setattr(dataset_rows, "SUMMARY_RECORDS", 5)
    h = researcher["headers"]
    repo = make_repo(client, h, name="many")
    jsonl = b"".join(
        json.dumps({"text": str(i), "license": "MIT" if i < 3 else "CC0-1.0"}).encode() + b"\n\n"
        for i in range(12)
    )
    rows = [{"text": str(i), "source": f"s{i % 2}"} for i in range(13)]
    samples = [{"__key__": f"k{i:02d}", "txt": str(i), "json": {"license": "MIT"}}
               for i in range(7)]  # fmt: skip
    files = {
        "a.jsonl": jsonl,
        "b.parquet": media.parquet(rows, row_group_size=4),
        "c.tar": media.shard(samples),
        "d.tar.gz": gzip.compress(media.shard(samples)),
    }
    answer = push(client, h, repo, files)
    assert answer.status_code == 201, answer.text
    meta = {f["path"]: f["meta"]["records"] for f in answer.json()["files"]}
    assert {p: (m["records"], m["tallied"], m["complete"]) for p, m in meta.items()} == {
        "a.jsonl": (12, 5, False),
        "b.parquet": (13, 5, False),
        "c.tar": (7, 5, False),
        "d.tar.gz": (7, 5, False),
    }
    assert meta["a.jsonl"]["licenses"] == {"CC0-1.0": 2, "MIT": 3}
    assert meta["b.parquet"]["sources"] == [["s0", 3], ["s1", 2]]
    assert meta["c.tar"]["licenses"] == {"MIT": 5}
    page = client.get(f"/artifacts/{repo}/versions/1").text
    assert "12 records; sources and licences read from the first 5 only" in page
    assert "13 records; sources and licences read from the first 5 only" in page
    # The viewer reads every record, past the tally too.
    last = client.get(f"/api/v1/artifacts/{repo}/versions/1/records/11", params={"file": "a.jsonl"})
    assert last.status_code == 200 and last.json()["license"] == "CC0-1.0"
