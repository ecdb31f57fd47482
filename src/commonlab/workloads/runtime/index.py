"""`index`: an exact-match search index of a dataset version's text (`datasearch`).

Every record of every record file (JSONL, Parquet, WebDataset `.tar`/`.tar.gz`; files in
the order of their paths) is read as the facility reads it (`artifacts.dataset_rows`, so
a record's number in its file is the one its page has); its text is `datasearch.content`'s.
Records without text, and those the configuration excludes (by position or content
digest, as the `exclude` job does), are left out. Two passes over the data, each streamed:
the first teaches a byte-level BPE from the first `sample_records` records kept, the
second tokenizes them all and builds the index. The output folder holds:

    manifest.json, shard-*   the index (`datasearch.ExactIndex` opens the folder)
    tokenizer.json           the tokenizer (`tokenizers.Tokenizer.from_file`); no special
                             token is added to a record, so none may be added to a query
    records.jsonl            line n: where the index's record n is, its digest, its own
                             source and licence, and its token count
    about.json               what was indexed, how, and what was left out
    results.json             the job's results, which `workload run` reads
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from commonlab.artifacts.dataset_rows import Record, iter_file_records, record_format
from commonlab.datasearch import BuildProgress, build_index
from commonlab.datasearch.content import PROVENANCE_FIELDS, record_digests, record_text
from commonlab.errors import InvalidInput
from commonlab.workloads.config import IndexConfig
from commonlab.workloads.runtime.exclude import (
    MAX_LISTED,
    NO_FALLBACK,
    Exclusion,
    ExclusionTally,
    dataset_files,
)
from commonlab.workloads.runtime.metrics import MetricsWriter
from commonlab.workloads.runtime.paths import Paths

__all__ = [
    "ABOUT",
    "ABOUT_FORMAT",
    "ABOUT_VERSION",
    "RECORDS",
    "RESULTS",
    "TOKENIZER",
    "build",
]

ABOUT = "about.json"
ABOUT_FORMAT = "commonlab-datasearch-index"
ABOUT_VERSION = 1
RECORDS = "records.jsonl"
RESULTS = "results.json"
TOKENIZER = "tokenizer.json"
# The index is built in the scratch folder and moved into the output when whole.
_BUILDING = "index-build"
# Records tokenized together (the tokenizer spreads a batch over the cores).
_ENCODE_RECORDS = 512
_ENCODE_CHARS = 16 << 20


@dataclass(frozen=True)
class _Kept:
    file: str
    record: Record
    text: str


@dataclass
class _Reading:
    """What a pass over the records met on its way (the second pass reports it)."""

    files: int = 0
    records: int = 0  # read, kept or not
    skipped_empty: int = 0
    cut_short: int = 0  # kept records with a text member cut at MAX_TEXT or not read
    complete: bool = True  # False when max_records stopped the reading
    excluded: ExclusionTally = field(default_factory=ExclusionTally)
    counts: dict[str, int] = field(default_factory=dict)  # records of each file read whole


def build(config: IndexConfig, paths: Paths) -> dict[str, Any]:
    """Index the version at `paths.data` into `paths.out`; write and return the results."""
    from commonlab.workloads.runtime.tokenizer import learn_tokenizer

    files = [(rel, path) for rel, path in dataset_files(paths.data) if record_format(rel)]
    if not files:
        raise InvalidInput(
            "the dataset has no record files to index: records come from JSONL, Parquet or "
            "WebDataset .tar (or .tar.gz) files"
        )
    exclusion = Exclusion(config.exclude)
    columns = frozenset(config.text_columns) if config.text_columns is not None else None

    with contextlib.closing(_kept(files, config, exclusion, columns, _Reading())) as first:
        texts = (kept.text for kept in first)
        head = next(texts, None)
        if head is None:
            raise InvalidInput(_nothing_to_index(config))
        learned = learn_tokenizer(_chain(head, texts), config.tokenizer)
    tokenizer = learned.backend_tokenizer
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    building = paths.scratch / _BUILDING
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    reading = _Reading()
    with (
        MetricsWriter(paths.metrics) as metrics,
        (paths.scratch / RECORDS).open("w", encoding="utf-8") as records_out,
        contextlib.closing(_kept(files, config, exclusion, columns, reading)) as second,
    ):

        def progress(done: BuildProgress) -> None:
            metrics.write(
                done.records, records=done.records, tokens=done.tokens, index_bytes=done.bytes
            )

        manifest = build_index(
            _tokenized(second, tokenizer, records_out),
            building / "index",
            vocab_size=vocab_size,
            progress=progress,
        )
    paths.out.mkdir(parents=True, exist_ok=True)
    for part in (building / "index").iterdir():
        shutil.move(part, paths.out / part.name)
    shutil.move(paths.scratch / RECORDS, paths.out / RECORDS)
    shutil.rmtree(building, ignore_errors=True)
    tokenizer.save(str(paths.out / TOKENIZER))

    semantic = _semantic(files, config, exclusion, columns, paths) if config.semantic else None

    excluded = reading.excluded
    not_found = exclusion.not_found(reading.counts, {rel for rel, _ in files})
    about = {
        "format": ABOUT_FORMAT,
        "version": ABOUT_VERSION,
        "records": manifest.records,
        "tokens": manifest.tokens,
        "bytes": manifest.bytes,
        "files": reading.files,
        "records_read": reading.records,
        "complete": reading.complete,
        "skipped_empty": reading.skipped_empty,
        "cut_short": reading.cut_short,
        "excluded": excluded.count,
        "optouts": config.exclude.optouts,
        "vocab_size": vocab_size,
        "text_columns": config.text_columns,
        "tokenizer": TOKENIZER,
        "records_file": RECORDS,
        "semantic": semantic,
    }
    (paths.out / ABOUT).write_text(json.dumps(about, indent=1) + "\n")
    results = {
        **{k: about[k] for k in ("records", "tokens", "bytes", "excluded", "vocab_size")},
        "shards": len(manifest.shards),
        "skipped_empty": reading.skipped_empty,
        "complete": reading.complete,
        "optouts": config.exclude.optouts,
        "excluded_records": excluded.listed,
        "not_found_count": len(not_found),
        "not_found": not_found[:MAX_LISTED],
    }
    (paths.out / RESULTS).write_text(json.dumps(results, indent=1) + "\n")
    return results


def _semantic(
    files: list[tuple[str, Path]],
    config: IndexConfig,
    exclusion: Exclusion,
    columns: frozenset[str] | None,
    paths: Paths,
) -> dict[str, Any]:
    """A third pass: every kept record's text embedded into the semantic index, numbered as
    the exact index numbers it (the same records, in the same order), beside it in the
    output. Captions and transcripts are text members, so images, audio and video are
    found through them."""
    try:
        from commonlab.datasearch.semantic import build_semantic_index
    except ImportError as exc:
        raise InvalidInput(
            f"semantic: this job's Python lacks {exc.name} (the `search` extra); "
            "build the index without semantic search, or install it"
        ) from None
    with contextlib.closing(_kept(files, config, exclusion, columns, _Reading())) as third:
        manifest = build_semantic_index(
            ((number, kept.text) for number, kept in enumerate(third)), paths.out
        )
    return {"model": manifest.model, "records": manifest.count, "bytes": manifest.bytes}


def _nothing_to_index(config: IndexConfig) -> str:
    which = (
        f"in the columns {', '.join(config.text_columns)} (text_columns)"
        if config.text_columns is not None
        else "(no record has a text field or text member)"
    )
    left_out = " once the exclusions are left out" if not config.exclude.empty else ""
    return f"the dataset has no text to index {which}{left_out}"


def _chain(head: str, rest: Iterable[str]) -> Iterator[str]:
    yield head
    yield from rest


def _kept(
    files: list[tuple[str, Path]],
    config: IndexConfig,
    exclusion: Exclusion,
    columns: frozenset[str] | None,
    reading: _Reading,
) -> Iterator[_Kept]:
    """The records indexed, in order, up to `config.max_records`; `reading` notes the rest."""
    kept = 0
    for rel, path in files:
        reading.files += 1
        count = 0
        for record in iter_file_records(path, rel, fallback=NO_FALLBACK):
            if config.max_records is not None and kept >= config.max_records:
                reading.complete = False
                return
            count += 1
            reading.records += 1
            if exclusion and exclusion.excludes(rel, record):
                reading.excluded.add(rel, record)
                continue
            text = record_text(record, columns)
            if not text:
                reading.skipped_empty += 1
                continue
            if _cut_short(record, columns):
                reading.cut_short += 1
            kept += 1
            yield _Kept(rel, record, text)
        reading.counts[rel] = count


def _cut_short(record: Record, columns: frozenset[str] | None) -> bool:
    """Whether a text member the index wanted was cut (at dataset_rows.MAX_TEXT characters)
    or not read at all (a shard's member past MAX_SIDECAR bytes)."""
    return any(
        member.kind == "text"
        and (member.truncated or member.text is None)
        and (
            member.name in columns if columns is not None else member.name not in PROVENANCE_FIELDS
        )
        for member in record.members
    )


def _batches(records: Iterator[_Kept]) -> Iterator[list[_Kept]]:
    while True:
        batch: list[_Kept] = []
        chars = 0
        for kept in records:
            batch.append(kept)
            chars += len(kept.text)
            if len(batch) >= _ENCODE_RECORDS or chars >= _ENCODE_CHARS:
                break
        if not batch:
            return
        yield batch


def _tokenized(records: Iterator[_Kept], tokenizer: Any, out: IO[str]) -> Iterator[np.ndarray]:
    """Each kept record's token ids, as the index numbers them; its line of records.jsonl
    is written as it goes."""
    for batch in _batches(records):
        encodings = tokenizer.encode_batch([kept.text for kept in batch], add_special_tokens=False)
        for kept, encoding in zip(batch, encodings, strict=True):
            ids = np.asarray(encoding.ids, dtype=np.uint16)
            out.write(json.dumps(_record_line(kept, len(ids)), ensure_ascii=False) + "\n")
            yield ids


def _record_line(kept: _Kept, tokens: int) -> dict[str, Any]:
    record = kept.record
    digests = record_digests(record)
    line: dict[str, Any] = {
        "file": kept.file,
        "index": record.index,
        "sha256": digests[0],
        "source": record.source if record.source_from == "record" else None,
        "license": record.license if record.license_from == "record" else None,
        "tokens": tokens,
    }
    if len(digests) > 1:
        line["member_sha256"] = list(digests[1:])
    return line
