"""`exclude`: a new version of a dataset without the records named, by position or by the
content digest of their text (an opt-out honoured as a new version, never a rewrite of a
published one).

Every file of the version is carried over: a record file (JSONL, Parquet, WebDataset
`.tar`/`.tar.gz`) that holds none of the records named is copied byte for byte; one that
does is rewritten without them, every other record unchanged and in order:

- JSONL: the lines of the dropped records go; every other line, blank ones too, is kept
  byte for byte.
- Parquet: the kept rows, written with the file's own schema (its metadata too) and its
  first column's compression.
- WebDataset: the shard without the dropped samples' members; a `.tar.gz` shard is
  compressed again with gzip (level 6, no timestamp, so the same input gives the same
  bytes).

Records are numbered as the facility numbers them (`artifacts.dataset_rows`), and matched
by digest as `datasearch.content` defines it. The index job leaves out records by the
same rule (`Exclusion`), so an index and an excluded version agree on what is gone.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commonlab.artifacts.dataset_rows import Fallback, Record, iter_file_records, record_format
from commonlab.artifacts.signing import CLIENT_DIRS
from commonlab.datasearch.content import record_digests
from commonlab.errors import InvalidInput
from commonlab.workloads.config import ExcludeConfig, Exclusions
from commonlab.workloads.runtime.paths import Paths

__all__ = [
    "MAX_LISTED",
    "RESULTS",
    "RESULTS_FORMAT",
    "Exclusion",
    "ExclusionTally",
    "dataset_files",
    "exclude",
]

RESULTS = "results.json"
RESULTS_FORMAT = "commonlab-exclusion-results"
# Lists in results are cut here (their counts are not): a card names examples, not a million.
MAX_LISTED = 1000
# Records say their own source and licence or say nothing: the version's declaration is not
# what a record is matched or reported by.
NO_FALLBACK = Fallback([], [])
_GZIP_SHARDS = (".tar.gz", ".tgz")
_GZIP_LEVEL = 6
_PARQUET_BATCH_ROWS = 65_536


def dataset_files(root: Path) -> list[tuple[str, Path]]:
    """Every regular file of the version under `root` as (path in the version, path here),
    sorted by the former, without the download client's own bookkeeping (`.commonlab/`)."""
    found: list[tuple[str, Path]] = []
    for folder, folders, names in os.walk(root):
        base = Path(folder)
        rel_base = base.relative_to(root).parts
        folders[:] = [
            name
            for name in folders
            if not any((*rel_base, name)[: len(skip)] == skip for skip in CLIENT_DIRS)
        ]
        for name in names:
            path = base / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _gzipped(name: str) -> bool:
    return name.lower().endswith(_GZIP_SHARDS)


class Exclusion:
    """Which records an `Exclusions` leaves out: those at a listed position, and those that
    answer to a listed digest (`record_digests`). Pure: it records nothing."""

    def __init__(self, exclusions: Exclusions) -> None:
        positions: dict[str, set[int]] = {}
        for at in exclusions.records:
            positions.setdefault(at.file, set()).add(at.index)
        self.positions = {file: frozenset(indexes) for file, indexes in positions.items()}
        self.digests = frozenset(exclusions.sha256)

    def __bool__(self) -> bool:
        return bool(self.positions or self.digests)

    def touches(self, file: str) -> bool:
        """Whether any record of `file` may be left out (else it need not be read)."""
        return bool(self.digests) or file in self.positions

    def excludes(self, file: str, record: Record) -> bool:
        if record.index in self.positions.get(file, ()):
            return True
        return bool(self.digests) and not self.digests.isdisjoint(record_digests(record))

    def not_found(self, counts: dict[str, int], files: set[str]) -> list[dict[str, Any]]:
        """The listed positions that name no record: in a file that is not one of the
        version's record files (`files`), or past the end of one read whole (`counts`: its
        records). Files neither read whole nor missing are not judged."""
        missing = []
        for file, indexes in sorted(self.positions.items()):
            if file in counts:
                missing += [
                    {"file": file, "index": i} for i in sorted(indexes) if i >= counts[file]
                ]
            elif file not in files:
                missing += [{"file": file, "index": i} for i in sorted(indexes)]
        return missing


@dataclass
class ExclusionTally:
    """The records left out, as results report them: the first MAX_LISTED, and how many."""

    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file: str, record: Record) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            digests = record_digests(record)
            self.listed.append(
                {"file": file, "index": record.index, "sha256": digests[0] if digests else None}
            )


def exclude(config: ExcludeConfig, paths: Paths) -> dict[str, Any]:
    """Copy the version at `paths.data` into `paths.out` without the excluded records; write
    and return the results."""
    exclusion = Exclusion(config.exclude)
    files = dataset_files(paths.data)
    out = paths.out
    out.mkdir(parents=True, exist_ok=True)
    tally = ExclusionTally()
    counts: dict[str, int] = {}
    changed: list[str] = []
    kept = 0
    for rel, path in files:
        if rel == RESULTS and _ours(path):
            continue  # an earlier exclusion's results: this one's replace them
        if rel == RESULTS:
            raise InvalidInput(
                f"the dataset has a file {RESULTS} at its top, where the exclude job writes "
                "its results: move it into a folder in a new version first"
            )
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fmt = record_format(rel)
        if fmt is None:
            shutil.copyfile(path, target)
            continue
        drops, keys, count = _drops(path, rel, exclusion, tally)
        counts[rel] = count
        kept += count - len(drops)
        if not drops:
            shutil.copyfile(path, target)
            continue
        partial = target.with_name(target.name + ".partial")
        if fmt == "jsonl":
            _rewrite_jsonl(path, partial, drops)
        elif fmt == "parquet":
            _rewrite_parquet(path, partial, drops)
        else:
            _rewrite_shard(path, partial, rel, drops, keys)
        partial.replace(target)
        changed.append(rel)
    not_found = exclusion.not_found(counts, set(counts))
    results = {
        "format": RESULTS_FORMAT,
        "version": 1,
        "optouts": config.exclude.optouts,
        "kept": kept,
        "dropped_count": tally.count,
        "dropped": tally.listed,
        "not_found_count": len(not_found),
        "not_found": not_found[:MAX_LISTED],
        "files": len(files),
        "files_changed_count": len(changed),
        "files_changed": changed[:MAX_LISTED],
    }
    (out / RESULTS).write_text(json.dumps(results, indent=1) + "\n")
    return results


def _ours(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == RESULTS_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _drops(
    path: Path, rel: str, exclusion: Exclusion, tally: ExclusionTally
) -> tuple[frozenset[int], list[str], int]:
    """The numbers of the file's records left out, every record's key (a shard's are
    checked against the rewrite's), and how many records it holds."""
    if not exclusion.touches(rel):
        return frozenset(), [], sum(1 for _ in iter_file_records(path, rel, fallback=NO_FALLBACK))
    drops: set[int] = set()
    keys: list[str] = []
    count = 0
    for record in iter_file_records(path, rel, fallback=NO_FALLBACK):
        count += 1
        keys.append(record.key)
        if exclusion.excludes(rel, record):
            drops.add(record.index)
            tally.add(rel, record)
    return frozenset(drops), keys, count


def _rewrite_jsonl(source: Path, target: Path, drops: frozenset[int]) -> None:
    # Numbered as dataset_rows numbers them: a line ends at b"\n"; a blank one (only
    # whitespace) is no record.
    index = -1
    with source.open("rb") as lines, target.open("wb") as out:
        for line in lines:
            if line.strip():
                index += 1
                if index in drops:
                    continue
            out.write(line)


def _rewrite_parquet(source: Path, target: Path, drops: frozenset[int]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(source)
    with pq.ParquetWriter(
        target, parquet.schema_arrow, compression=_compression(parquet)
    ) as writer:
        first = 0
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            keep = [i for i in range(batch.num_rows) if first + i not in drops]
            if keep:
                writer.write_table(pa.Table.from_batches([batch.take(pa.array(keep))]))
            first += batch.num_rows


def _compression(parquet: Any) -> str:
    """The file's first column's codec, as pyarrow's writer names it (snappy when none)."""
    meta = parquet.metadata
    if not meta.num_row_groups or not meta.num_columns:
        return "snappy"
    codec = meta.row_group(0).column(0).compression.lower()
    return {"uncompressed": "none", "lz4_raw": "lz4"}.get(codec, codec)


def _sample_key(name: str) -> str:
    """WebDataset's rule, as dataset_rows applies it: the member's path up to the first dot
    of its file name."""
    folder, _, base = name.rpartition("/")
    stem = base.partition(".")[0]
    return f"{folder}/{stem}" if folder else stem


def _rewrite_shard(
    source: Path, target: Path, rel: str, drops: frozenset[int], keys: list[str]
) -> None:
    gzipped = _gzipped(rel)
    with contextlib.ExitStack() as stack:
        opened = gzip.open(source, "rb") if gzipped else source.open("rb")  # noqa: SIM115
        raw_in = stack.enter_context(opened)
        shard = stack.enter_context(tarfile.open(fileobj=raw_in, mode="r|"))
        raw_out = stack.enter_context(
            gzip.GzipFile(target, "wb", compresslevel=_GZIP_LEVEL, mtime=0)
            if gzipped
            else target.open("wb")
        )
        out = stack.enter_context(
            tarfile.open(fileobj=raw_out, mode="w|", format=tarfile.PAX_FORMAT)
        )
        for index, info in _numbered(shard, rel, keys):
            if index is None:
                out.addfile(info)  # a folder or a link: no sample's, kept as it was
            elif index not in drops:
                out.addfile(info, shard.extractfile(info))


def _numbered(
    shard: tarfile.TarFile, rel: str, keys: list[str]
) -> Iterator[tuple[int | None, tarfile.TarInfo]]:
    """Each member with the number of the sample it belongs to (None: not a regular file,
    so no sample's), checked against the keys the facility's reader gave those samples."""
    key: str | None = None
    index = -1
    for info in shard:
        if not info.isfile():
            yield None, info
            continue
        member_key = _sample_key(info.name)
        if member_key != key:
            key, index = member_key, index + 1
            if index >= len(keys) or keys[index] != key:
                raise RuntimeError(f"{rel}: sample {index} is not where the reader found it")
        yield index, info
