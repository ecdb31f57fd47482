"""A dataset version's records, streamed from its files and never loaded whole: JSONL (one
JSON object a line), Parquet (row group by row group) and WebDataset `.tar` shards (members
grouped by key). Every workload reads its data through `iter_records`, so each format and
each error message about a missing column is written once.

The order is a pure function of the folder: files sorted by their path, records in file
order. Training relies on it to find a step's batch again after a restart.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec

__all__ = ["SUFFIXES", "columns_of", "data_files", "iter_records"]

SUFFIXES = (".jsonl", ".parquet", ".tar")
# WebDataset members whose extension names a column of its own and an alias beside it.
_TEXT_MEMBERS = {"txt": "text", "text": "text"}
_AUDIO_MEMBERS = {"wav": "audio", "flac": "audio", "mp3": "audio", "ogg": "audio"}
_PARQUET_BATCH_ROWS = 1024
# The DataSpec fields that name a column, to tell a person which setting to change.
_COLUMN_SETTINGS = (
    "text_column",
    "audio_column",
    "messages_column",
    "input_column",
    "target_column",
)


def data_files(root: Path, spec: DataSpec) -> list[Path]:
    """The readable files under the dataset folder (or its `spec.split` subfolder), sorted by
    their path relative to it."""
    base = root
    if spec.split:
        if ".." in Path(spec.split).parts:
            raise InvalidInput(f"data.split {spec.split!r} must stay inside the dataset")
        base = root / spec.split
        if not base.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise InvalidInput(
                f"the dataset has no folder {spec.split!r} for data.split "
                f"(it has: {', '.join(present) or 'no folders'})"
            )
    files = sorted(
        (p for p in base.rglob("*") if p.is_file() and p.suffix in SUFFIXES),
        key=lambda p: p.relative_to(base).as_posix(),
    )
    if not files:
        where = f"folder {spec.split!r} of the dataset" if spec.split else "the dataset"
        raise InvalidInput(
            f"{where} has no file this workload can read (it reads {', '.join(SUFFIXES)} files)"
        )
    return files


def iter_records(root: Path, spec: DataSpec, columns: Sequence[str] = ()) -> Iterator[dict]:
    """Each record of the dataset, in a fixed order, up to `spec.max_records`: a dict of the
    asked `columns` (all of a record's columns when none are asked).

    A record without an asked column raises InvalidInput naming it and the columns it has."""
    count = 0
    for path in data_files(root, spec):
        for record in _file_records(path, columns):
            if spec.max_records is not None and count >= spec.max_records:
                return
            if columns:
                _require(record, columns, spec)
                record = {name: record[name] for name in columns}
            count += 1
            yield record


def columns_of(root: Path, spec: DataSpec) -> list[str]:
    """The columns of the dataset's first record (Parquet: of the first file's schema)."""
    first = data_files(root, spec)[0]
    if first.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(first).schema_arrow.names)
    for record in _file_records(first, ()):
        return list(record)
    return []


def _require(record: dict, columns: Sequence[str], spec: DataSpec) -> None:
    for name in columns:
        if name not in record:
            setting = next((s for s in _COLUMN_SETTINGS if getattr(spec, s) == name), None)
            hint = f"; set data.{setting}" if setting else ""
            raise InvalidInput(
                f"the dataset has no column {name!r} "
                f"(it has: {', '.join(sorted(record)) or 'nothing'}){hint}"
            )


def _file_records(path: Path, columns: Sequence[str]) -> Iterator[dict]:
    if path.suffix == ".jsonl":
        return _jsonl_records(path)
    if path.suffix == ".parquet":
        return _parquet_records(path, columns)
    return _webdataset_records(path)


def _jsonl_records(path: Path) -> Iterator[dict]:
    with path.open("r", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path.name} line {number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise InvalidInput(f"{path.name} line {number} is not a JSON object")
            yield record


def _parquet_records(path: Path, columns: Sequence[str]) -> Iterator[dict]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    present = parquet.schema_arrow.names
    # Read only the asked columns when all are there; otherwise every record is refused by
    # `_require` with the full list, which needs them all.
    wanted = list(columns) if columns and all(c in present for c in columns) else None
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
        yield from batch.to_pylist()


def _webdataset_records(path: Path) -> Iterator[dict]:
    """Members grouped by key (the member's path up to the first dot of its name), as
    WebDataset writes them: one sample's members next to each other in the shard."""
    key: str | None = None
    record: dict[str, Any] = {}
    # "r|*" reads the shard as a stream: no index, no seeking, any compression.
    with tarfile.open(path, mode="r|*") as shard:
        for member in shard:
            if not member.isfile():
                continue
            folder, _, name = member.name.rpartition("/")
            stem, dot, extension = name.partition(".")
            if not dot or not stem:
                continue  # no extension, or a hidden file: not a sample member
            member_key = f"{folder}/{stem}" if folder else stem
            if member_key != key:
                if record:
                    yield record
                key, record = member_key, {"__key__": member_key}
            handle = shard.extractfile(member)
            payload = handle.read() if handle is not None else b""
            _add_member(record, extension.lower(), payload, path)
    if record:
        yield record


def _add_member(record: dict[str, Any], extension: str, payload: bytes, shard: Path) -> None:
    if extension == "json":
        try:
            fields = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{shard.name}: {record['__key__']}.json is not JSON: {exc.msg}"
            ) from None
        if isinstance(fields, dict):
            record.update(fields)
        else:
            record["json"] = fields
    elif extension in _TEXT_MEMBERS:
        text = payload.decode("utf-8")
        record[extension] = text
        record[_TEXT_MEMBERS[extension]] = text
    elif extension in _AUDIO_MEMBERS:
        # Audio stays encoded: the speech workload decodes it.
        record[extension] = payload
        record[_AUDIO_MEMBERS[extension]] = payload
    else:
        record[extension] = payload
