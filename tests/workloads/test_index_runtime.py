"""The `index` workload: a dataset version's text, numbered as the facility numbers its
records, in an exact-match index whose hits lead back to them; excluded records left out.

`make_dataset` (JSONL with blank lines and a record that names its own source and licence,
Parquet, WebDataset .tar and .tar.gz, a file of no record format) is the exclude tests' too.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer

from commonlab.artifacts.dataset_rows import Fallback, Record, read_page
from commonlab.datasearch import ExactIndex
from commonlab.datasearch.content import content_sha256, record_digests, record_text
from commonlab.datasearch.layout import MAX_VOCAB_SIZE
from commonlab.errors import InvalidInput
from commonlab.workloads.config import (
    INDEX_MAX_VOCAB_SIZE,
    MAX_EXCLUDED,
    Exclusions,
    IndexConfig,
    RecordAt,
)
from commonlab.workloads.runtime.__main__ import main
from commonlab.workloads.runtime.index import build
from commonlab.workloads.runtime.paths import Paths

PASSAGE = "the lighthouse keeper counted seven silver gulls"
NOVEL = "https://novels.example/lighthouse"
RECORD_FILES = ("a.jsonl", "b.parquet", "shards/c.tar", "shards/d.tar.gz")
README = b"# A small corpus\r\n\xe2\x9c\x93 bytes kept as they are\n"


def _tar(path: Path, members: list[tuple[str, bytes]], *, gz: bool = False) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as shard:
        folder = tarfile.TarInfo("s")
        folder.type = tarfile.DIRTYPE  # a folder entry: part of no sample
        shard.addfile(folder)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            shard.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0) if gz else raw.getvalue())


def make_dataset(root: Path) -> Path:
    """A version's files as `workload run` pulls them into its inputs folder."""
    root.mkdir(parents=True)
    lines = [
        json.dumps({"text": "Morning fog rolled over the harbour walls."}),
        "",
        "   ",
        json.dumps(
            {
                "text": f"{PASSAGE} at dawn, and wrote the number down.",
                "source": NOVEL,
                "license": "CC-BY-4.0",
            }
        ),
        json.dumps({"title": "Tides", "text": "Low water came at noon."}),
        json.dumps({"text": ""}),  # no text: not indexed
        json.dumps({"text": "A ferry horn sounded twice."}),
    ]
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.table(
        {
            "text": [
                "Nets dried on the quay in the wind.",
                f"{PASSAGE}, then slept until the tide turned.",
                "Gulls argued over a crust of bread.",
            ],
            "lang": ["en", "en", "en"],
        }
    )
    pq.write_table(table, root / "b.parquet", row_group_size=2)
    (root / "shards").mkdir()
    jpeg = b"\xff\xd8\xff\xe0" + bytes(64)
    _tar(
        root / "shards" / "c.tar",
        [
            ("s/000.txt", b"A red boat in a grey sea."),
            ("s/000.json", json.dumps({"url": "https://pics.example/1"}).encode()),
            ("s/000.jpg", jpeg),
            ("s/001.jpg", jpeg),  # an image without caption: nothing to index
            ("s/002.txt", b"Two children fishing from the pier."),
            ("s/002.jpg", jpeg),
        ],
    )
    _tar(
        root / "shards" / "d.tar.gz",
        [
            ("s/000.txt", b"Storm clouds over the lighthouse."),
            ("s/001.txt", b"A dog asleep on a coil of rope."),
        ],
        gz=True,
    )
    (root / "README.md").write_bytes(README)
    (root / ".commonlab").mkdir()  # the download client's bookkeeping, not the version's
    (root / ".commonlab" / "signature.json").write_text("{}")
    return root


def read_all(root: Path, rel: str) -> list[Record]:
    """A file's records as the facility's pages give them."""
    records: list[Record] = []
    while True:
        page = read_page(root / rel, rel, offset=len(records), limit=100, fallback=Fallback([], []))
        records += page.records
        if not page.has_more:
            return records


def paths_for(tmp_path: Path, data: Path, name: str = "job") -> Paths:
    work = tmp_path / name
    return Paths(data, None, work / "output", work / "checkpoints", work / "metrics.jsonl")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def _index(tmp_path: Path, data: Path, name: str = "job", **config: object) -> Paths:
    paths = paths_for(tmp_path, data, name)
    build(IndexConfig.model_validate({"vocab_size": 300, **config}), paths)
    return paths


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def _query(out: Path, text: str) -> list[int]:
    return Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids


def test_records_are_numbered_as_the_facility_numbers_them(tmp_path: Path, data: Path) -> None:
    paths = _index(tmp_path, data)
    lines = _records(paths.out)
    expected = [
        (rel, record)
        for rel in RECORD_FILES
        for record in read_all(data, rel)
        if record_text(record)
    ]
    assert [(line["file"], line["index"]) for line in lines] == [
        (rel, record.index) for rel, record in expected
    ]
    for line, (_, record) in zip(lines, expected, strict=True):
        assert line["sha256"] == record_digests(record)[0]
    # The JSONL file's blank lines are not records; its empty-text record is not indexed.
    assert [line["index"] for line in lines if line["file"] == "a.jsonl"] == [0, 1, 2, 4]
    assert [line["index"] for line in lines if line["file"] == "shards/c.tar"] == [0, 2]
    # A record's own source and licence; a sidecar's URL; none where the record says none.
    by_place = {(line["file"], line["index"]): line for line in lines}
    assert by_place["a.jsonl", 1]["source"] == NOVEL
    assert by_place["a.jsonl", 1]["license"] == "CC-BY-4.0"
    assert by_place["shards/c.tar", 0]["source"] == "https://pics.example/1"
    assert by_place["a.jsonl", 0]["source"] is None and by_place["a.jsonl", 0]["license"] is None
    # The record with a title answers to each of its members' digests too.
    assert content_sha256("Low water came at noon.") in by_place["a.jsonl", 2]["member_sha256"]


def test_a_passage_in_two_records_is_counted_twice_and_found_in_both(
    tmp_path: Path, data: Path
) -> None:
    paths = _index(tmp_path, data)
    lines = _records(paths.out)
    with ExactIndex(paths.out) as index:
        query = _query(paths.out, PASSAGE)
        assert index.count(query) == 2
        places = sorted((lines[hit.record]["file"], lines[hit.record]["index"]) for hit in
                        index.locate(query))  # fmt: skip
        assert places == [("a.jsonl", 1), ("b.parquet", 1)]
        assert index.count(_query(paths.out, "Gulls argued over a crust")) == 1
        assert index.count(_query(paths.out, "a passage no record holds")) == 0
        # Each record's tokens in the index are its text's, as the tokenizer encodes it.
        for number, line in enumerate(lines):
            assert len(index.record(number)) == line["tokens"]


def test_about_and_results_describe_the_index(tmp_path: Path, data: Path) -> None:
    paths = _index(tmp_path, data)
    about = json.loads((paths.out / "about.json").read_text())
    results = json.loads((paths.out / "results.json").read_text())
    manifest = json.loads((paths.out / "manifest.json").read_text())
    assert about["format"] == "commonlab-datasearch-index" and about["version"] == 1
    assert about["records"] == len(_records(paths.out)) == manifest["records"] == 11
    assert about["tokens"] == manifest["tokens"] == results["tokens"] > 0
    assert about["skipped_empty"] == 2  # the empty JSONL text, the uncaptioned image
    assert about["excluded"] == results["excluded"] == 0
    assert about["files"] == 4 and about["complete"] is True
    assert about["vocab_size"] <= 300 and about["text_columns"] is None
    assert results["bytes"] == manifest["bytes"] > 0
    metrics = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert metrics[-1]["records"] == 11


def test_excluded_records_are_not_indexed(tmp_path: Path, data: Path) -> None:
    by_hash = content_sha256("Gulls argued over a crust of bread.")
    paths = _index(
        tmp_path,
        data,
        exclude={
            "optouts": [7],
            "records": [
                {"file": "a.jsonl", "index": 1},  # the novel's passage
                {"file": "a.jsonl", "index": 40},  # no such record
                {"file": "gone.jsonl", "index": 0},  # no such file
            ],
            "sha256": [by_hash.upper()],
        },
    )
    lines = _records(paths.out)
    places = {(line["file"], line["index"]) for line in lines}
    assert ("a.jsonl", 1) not in places and ("b.parquet", 2) not in places
    assert len(lines) == 9
    with ExactIndex(paths.out) as index:
        assert index.count(_query(paths.out, PASSAGE)) == 1
        assert index.count(_query(paths.out, "Gulls argued over a crust")) == 0
    about = json.loads((paths.out / "about.json").read_text())
    results = json.loads((paths.out / "results.json").read_text())
    assert about["excluded"] == 2 and about["optouts"] == [7]
    assert {(r["file"], r["index"]) for r in results["excluded_records"]} == {
        ("a.jsonl", 1),
        ("b.parquet", 2),
    }
    assert results["not_found"] == [
        {"file": "a.jsonl", "index": 40},
        {"file": "gone.jsonl", "index": 0},
    ]


def test_text_columns_and_max_records(tmp_path: Path, data: Path) -> None:
    paths = _index(tmp_path, data, text_columns=["title"])
    assert [(line["file"], line["index"]) for line in _records(paths.out)] == [("a.jsonl", 2)]
    paths = _index(tmp_path, data, name="first", max_records=3)
    assert [(line["file"], line["index"]) for line in _records(paths.out)] == [
        ("a.jsonl", 0),
        ("a.jsonl", 1),
        ("a.jsonl", 2),
    ]
    assert json.loads((paths.out / "about.json").read_text())["complete"] is False


def test_a_dataset_without_text_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pictures"
    root.mkdir()
    _tar(root / "p.tar", [("000.jpg", b"\xff\xd8\xff\xe0"), ("000.json", b"{}")])
    with pytest.raises(InvalidInput, match="no text to index"):
        build(IndexConfig(), paths_for(tmp_path, root))
    (root / "p.tar").unlink()
    (root / "notes.md").write_text("not records")
    with pytest.raises(InvalidInput, match="no record files"):
        build(IndexConfig(), paths_for(tmp_path, root))


def test_the_runtime_entry_point_runs_an_index_job(tmp_path: Path, data: Path) -> None:
    paths = paths_for(tmp_path, data)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"vocab_size": 300}))
    argv = [
        "index", "--config", str(config), "--data", str(data), "--out", str(paths.out),
        "--scratch", str(paths.scratch), "--metrics", str(paths.metrics),
    ]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((paths.out / "results.json").read_text())["records"] == 11
    config.write_text(json.dumps({"vocab_size": 70_000}))
    assert main(argv) == 2  # refused with one line, before anything is read


def test_the_vocabulary_fits_the_index() -> None:
    assert INDEX_MAX_VOCAB_SIZE == MAX_VOCAB_SIZE
    assert IndexConfig(vocab_size=MAX_VOCAB_SIZE).vocab_size == MAX_VOCAB_SIZE
    for size in (259, MAX_VOCAB_SIZE + 1):
        with pytest.raises(ValidationError, match="vocab_size"):
            IndexConfig(vocab_size=size)


@pytest.mark.parametrize("file", ["../a.jsonl", "/a.jsonl", "a/../../b", "a//b", "./a", "a\\b"])
def test_a_record_is_named_inside_the_version(file: str) -> None:
    with pytest.raises(ValidationError, match="inside the version"):
        RecordAt(file=file, index=0)
    with pytest.raises(ValidationError):
        RecordAt(file="a.jsonl", index=-1)


def test_exclusions_are_bounded_and_digests_are_hex() -> None:
    schema = Exclusions.model_json_schema()["properties"]
    assert schema["records"]["maxItems"] == schema["sha256"]["maxItems"] == MAX_EXCLUDED
    with pytest.raises(ValidationError, match="sha256"):
        Exclusions(sha256=["not a digest"])
    assert Exclusions(sha256=["AB" * 32]).sha256 == ["ab" * 32]
    with pytest.raises(ValidationError, match="optouts"):
        Exclusions(optouts=[0])
