"""Small text datasets for tests: sentences from a tiny grammar (regular enough that a
model of a few thousand parameters learns something in twenty steps), written as JSONL,
Parquet (several row groups) or WebDataset shards (`key.txt` + `key.json`), the three
forms `runtime/data.py` reads. Records are `{"id": "doc-00000", "text": ...}`."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "FORMATS",
    "sentences",
    "text_records",
    "write_dataset",
    "write_jsonl",
    "write_parquet",
    "write_webdataset",
]

FORMATS = ("jsonl", "parquet", "webdataset")

_SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird", "a child"]
_VERBS = ["sees", "likes", "finds", "follows", "paints", "calls"]
_OBJECTS = ["the red ball", "a small house", "the river", "the green tree", "a blue boat"]
_ENDINGS = ["today.", "in the morning.", "at night.", "again.", "with joy."]


def sentences(count: int, *, seed: int = 0) -> list[str]:
    """`count` sentences, the same ones for the same seed."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(words) for words in (_SUBJECTS, _VERBS, _OBJECTS, _ENDINGS))
        for _ in range(count)
    ]


def text_records(count: int = 200, *, seed: int = 0) -> list[dict[str, str]]:
    return [
        {"id": f"doc-{index:05d}", "text": text}
        for index, text in enumerate(sentences(count, seed=seed))
    ]


def write_jsonl(folder: Path, records: list[dict], *, files: int = 2) -> Path:
    """`records` over `files` JSONL files (sorted names keep the order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, chunk in enumerate(_split(records, files)):
        lines = "".join(json.dumps(record) + "\n" for record in chunk)
        (folder / f"part-{part:03d}.jsonl").write_text(lines, encoding="utf-8")
    return folder


def write_parquet(folder: Path, records: list[dict], *, row_group_size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(records)
    pq.write_table(table, folder / "train.parquet", row_group_size=row_group_size)
    return folder


def write_webdataset(folder: Path, records: list[dict], *, shards: int = 2) -> Path:
    """Each record as `<id>.txt` (its text) and `<id>.json` (its other fields)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, chunk in enumerate(_split(records, shards)):
        with tarfile.open(folder / f"shard-{number:06d}.tar", "w") as tar:
            for record in chunk:
                others = {k: v for k, v in record.items() if k != "text"}
                _add(tar, f"{record['id']}.txt", record["text"].encode("utf-8"))
                _add(tar, f"{record['id']}.json", json.dumps(others).encode("utf-8"))
    return folder


def write_dataset(folder: Path, records: list[dict], form: str) -> Path:
    writers = {"jsonl": write_jsonl, "parquet": write_parquet, "webdataset": write_webdataset}
    return writers[form](folder, records)


def _split(records: list[dict], parts: int) -> list[list[dict]]:
    size = -(-len(records) // parts)
    return [records[i : i + size] for i in range(0, len(records), size)]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
