"""The `exclude` workload: a new version of a dataset without the records named, by position
or content digest; every other record unchanged and in order, every other file byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from commonlab.artifacts.dataset_rows import Record
from commonlab.datasearch.content import content_sha256, record_digests
from commonlab.errors import InvalidInput
from commonlab.workloads.config import ExcludeConfig
from commonlab.workloads.runtime.__main__ import main
from commonlab.workloads.runtime.exclude import exclude
from commonlab.workloads.runtime.paths import Paths
from tests.workloads.test_index_runtime import (
    PASSAGE,
    README,
    RECORD_FILES,
    make_dataset,
    paths_for,
    read_all,
)

GULLS = "Gulls argued over a crust of bread."
DOG = "A dog asleep on a coil of rope."


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def _exclude(tmp_path: Path, data: Path, **exclusions: object) -> tuple[Paths, dict]:
    paths = paths_for(tmp_path, data)
    results = exclude(ExcludeConfig.model_validate({"exclude": exclusions}), paths)
    return paths, results


def _shown(record: Record) -> list[tuple[str, str | None]]:
    """What a record shows (its members' names and texts), its number aside."""
    return [(member.name, member.text) for member in record.members]


DROPPED = {
    ("a.jsonl", 1),  # by position: the novel's passage
    ("b.parquet", 2),  # by its text's digest
    ("shards/c.tar", 1),  # by position: a sample with no text at all
    ("shards/d.tar.gz", 1),  # by digest, in a compressed shard
    ("a.jsonl", 2),  # by the digest of one of its members
}


def _exclude_five(tmp_path: Path, data: Path) -> tuple[Paths, dict]:
    return _exclude(
        tmp_path,
        data,
        optouts=[3, 4],
        records=[
            {"file": "a.jsonl", "index": 1},
            {"file": "shards/c.tar", "index": 1},
            {"file": "a.jsonl", "index": 99},
            {"file": "README.md", "index": 0},
        ],
        sha256=[
            content_sha256(GULLS),
            content_sha256(DOG + "\n"),
            content_sha256("Low water came at noon."),
        ],
    )


def test_the_records_named_are_gone_and_the_rest_unchanged(tmp_path: Path, data: Path) -> None:
    paths, _ = _exclude_five(tmp_path, data)
    for rel in RECORD_FILES:
        before = read_all(data, rel)
        after = read_all(paths.out, rel)
        kept = [record for record in before if (rel, record.index) not in DROPPED]
        assert [_shown(record) for record in after] == [_shown(record) for record in kept], rel
        assert [record.source for record in after] == [record.source for record in kept]
        assert [record.index for record in after] == list(range(len(kept)))
    assert PASSAGE not in (paths.out / "a.jsonl").read_text()


def test_other_files_are_copied_byte_for_byte(tmp_path: Path, data: Path) -> None:
    paths, results = _exclude(tmp_path, data, records=[{"file": "a.jsonl", "index": 0}])
    assert (paths.out / "README.md").read_bytes() == README
    for rel in ("b.parquet", "shards/c.tar", "shards/d.tar.gz"):
        assert (paths.out / rel).read_bytes() == (data / rel).read_bytes()
    assert not (paths.out / ".commonlab").exists()
    assert results["files_changed"] == ["a.jsonl"]
    # JSONL keeps every other line as it was, blank lines too.
    assert (paths.out / "a.jsonl").read_text().splitlines() == (
        (data / "a.jsonl").read_text().splitlines()[1:]
    )


def test_a_rewritten_parquet_file_keeps_its_schema(tmp_path: Path, data: Path) -> None:
    paths, _ = _exclude(tmp_path, data, sha256=[content_sha256(GULLS)])
    before, after = pq.ParquetFile(data / "b.parquet"), pq.ParquetFile(paths.out / "b.parquet")
    assert after.schema_arrow == before.schema_arrow
    assert after.schema_arrow.metadata == before.schema_arrow.metadata
    assert after.metadata.num_rows == 2


def test_results_say_what_was_dropped_and_what_was_not_found(tmp_path: Path, data: Path) -> None:
    paths, results = _exclude_five(tmp_path, data)
    assert json.loads((paths.out / "results.json").read_text()) == results
    assert results["format"] == "commonlab-exclusion-results"
    assert results["optouts"] == [3, 4]
    assert results["dropped_count"] == len(DROPPED)
    assert {(d["file"], d["index"]) for d in results["dropped"]} == DROPPED
    digests = {(d["file"], d["index"]): d["sha256"] for d in results["dropped"]}
    # The record's own digest (of all its text: "lang" is a text column too), which the
    # digest of the one member asked for led to.
    gulls = read_all(data, "b.parquet")[2]
    assert digests["b.parquet", 2] == record_digests(gulls)[0] != content_sha256(GULLS)
    assert content_sha256(GULLS) in record_digests(gulls)
    assert digests["shards/c.tar", 1] is None  # no text, so no digest
    every = sum(len(read_all(data, rel)) for rel in RECORD_FILES)
    assert results["kept"] == every - len(DROPPED)
    # Named but not there: not an error (an earlier version may have dropped it already).
    assert results["not_found"] == [
        {"file": "README.md", "index": 0},
        {"file": "a.jsonl", "index": 99},
    ]
    assert sorted(results["files_changed"]) == sorted(RECORD_FILES)
    assert results["files"] == len(RECORD_FILES) + 1


def test_an_excluded_version_can_be_excluded_from_again(tmp_path: Path, data: Path) -> None:
    first, _ = _exclude_five(tmp_path, data)
    second = paths_for(tmp_path, first.out, "again")
    config = ExcludeConfig.model_validate({"exclude": {"sha256": [content_sha256(DOG)]}})
    results = exclude(config, second)
    assert results["dropped_count"] == 0  # gone already
    assert json.loads((second.out / "results.json").read_text())["optouts"] == []
    for rel in RECORD_FILES:
        assert (second.out / rel).read_bytes() == (first.out / rel).read_bytes()


def test_a_results_file_of_the_dataset_is_not_overwritten(tmp_path: Path, data: Path) -> None:
    (data / "results.json").write_text('{"task": "an evaluation log"}')
    with pytest.raises(InvalidInput, match=r"results\.json"):
        _exclude(tmp_path, data, records=[{"file": "a.jsonl", "index": 0}])


def test_every_digest_a_record_answers_to_excludes_it(tmp_path: Path, data: Path) -> None:
    titled = next(r for r in read_all(data, "a.jsonl") if r.index == 2)
    for n, digest in enumerate(record_digests(titled)):
        paths = paths_for(tmp_path, data, f"by-{n}")
        exclude(ExcludeConfig.model_validate({"exclude": {"sha256": [digest]}}), paths)
        assert len(read_all(paths.out, "a.jsonl")) == len(read_all(data, "a.jsonl")) - 1


def test_nothing_to_exclude_is_refused(tmp_path: Path, data: Path) -> None:
    with pytest.raises(ValidationError, match="nothing to exclude"):
        ExcludeConfig.model_validate({"exclude": {"optouts": [1]}})
    with pytest.raises(ValidationError, match="exclude"):
        ExcludeConfig.model_validate({})
    paths = paths_for(tmp_path, data)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"exclude": {}}))
    argv = [
        "exclude", "--config", str(config), "--data", str(data), "--out", str(paths.out),
        "--scratch", str(paths.scratch), "--metrics", str(paths.metrics),
    ]  # fmt: skip
    assert main(argv) == 2
    assert not paths.out.exists()
