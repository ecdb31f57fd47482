"""runtime/data.py: the same records from JSONL, Parquet and WebDataset; a missing column
named with those there are; `split` and `max_records`."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec
from commonlab.workloads.runtime.data import columns_of, iter_records
from tests.workloads.runtime.text_data import (
    FORMATS,
    text_records,
    write_dataset,
    write_jsonl,
    write_parquet,
)


@pytest.mark.parametrize("form", FORMATS)
def test_every_format_streams_the_same_records_in_order(tmp_path: Path, form: str) -> None:
    records = text_records(120)
    root = write_dataset(tmp_path / form, records, form)
    streamed = list(iter_records(root, DataSpec(), ["id", "text"]))
    assert streamed == records


def test_webdataset_members_are_grouped_by_key_with_aliases(tmp_path: Path) -> None:
    shard = tmp_path / "data" / "shard.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        for name, payload in [
            ("a/x-1.seg.txt", b"hello"),
            ("a/x-1.wav", b"RIFF...."),
            ("a/x-1.json", json.dumps({"speaker": "s1"}).encode()),
            ("a/x-2.txt", b"world"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    first, second = iter_records(tmp_path / "data", DataSpec())
    assert first["__key__"] == "a/x-1"
    assert first["audio"] == first["wav"] == b"RIFF...."
    assert first["speaker"] == "s1"
    assert first["seg.txt"] == b"hello"  # only a plain `.txt` member is text
    assert second == {"__key__": "a/x-2", "txt": "world", "text": "world"}


@pytest.mark.parametrize("form", FORMATS)
def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path: Path, form: str) -> None:
    records = [{"id": r["id"], "content": r["text"]} for r in text_records(5)]
    if form == "webdataset":
        records = [{"id": r["id"], "text": r["content"]} for r in records]
    root = write_dataset(tmp_path / form, records, form)
    spec = DataSpec(text_column="body")
    with pytest.raises(InvalidInput) as caught:
        list(iter_records(root, spec, ["body"]))
    there = set(columns_of(root, spec))
    assert "the dataset has no column 'body'" in caught.value.message
    assert "set data.text_column" in caught.value.message
    for column in there:
        assert column in caught.value.message
    assert "id" in there


def test_split_reads_only_its_folder_and_max_records_stops_early(tmp_path: Path) -> None:
    records = text_records(40)
    write_jsonl(tmp_path / "train", records[:30])
    write_parquet(tmp_path / "test", records[30:])
    everything = list(iter_records(tmp_path, DataSpec(), ["text"]))
    assert len(everything) == 40
    test = list(iter_records(tmp_path, DataSpec(split="test"), ["id"]))
    assert test == [{"id": r["id"]} for r in records[30:]]
    first = list(iter_records(tmp_path, DataSpec(split="train", max_records=7), ["id"]))
    assert first == [{"id": r["id"]} for r in records[:7]]


def test_a_folder_without_readable_files_says_what_it_reads(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(InvalidInput, match=r"\.jsonl, \.parquet, \.tar"):
        list(iter_records(tmp_path, DataSpec(), ["text"]))
    with pytest.raises(InvalidInput, match="no folder 'valid'"):
        list(iter_records(tmp_path, DataSpec(split="valid"), ["text"]))
