"""The rows of a dataset version (its "records" in the API; not the public record), read from
its files as they are stored: rows of JSONL and Parquet files (text, code, media in a column)
and samples of WebDataset `.tar` and `.tar.gz` shards (an image, audio or video with its
`.json` sidecar). Each record says where it came from and under which licence: from its own
fields or sidecar when it has them, else from the version's declaration, and it says which.
Nothing here authorizes: callers do, first. The one thing written is a JSONL file's sparse
line index, a cache beside the store's objects."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import posixpath
import shutil
import struct
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from commonlab.artifacts import metadata
from commonlab.artifacts.schemas import MemberOut, RecordOut
from commonlab.artifacts.store import derived_path
from commonlab.errors import InvalidInput, NotFound

__all__ = [
    "FORMATS",
    "Fallback",
    "Member",
    "MemberData",
    "Record",
    "RecordNotFound",
    "RecordPage",
    "UnreadableRecords",
    "check_format",
    "has_record",
    "iter_file_records",
    "line_index_path",
    "member_data",
    "provenance",
    "read_page",
    "read_record",
    "record_format",
    "record_out",
    "shard_compression",
    "shard_members",
    "summarize",
]

# A line of JSONL, a sidecar, a text member: past these, a record is refused or cut short.
MAX_LINE = 16 << 20
MAX_SIDECAR = 1 << 20
MAX_TEXT = 1 << 20
PREVIEW = 240
MAX_PAGE = 100
# A member of a compressed shard is unpacked to be served (a gzip stream cannot seek): into
# memory up to SPOOL_IN_MEMORY, then a temporary file, and never past MAX_UNPACKED.
SPOOL_IN_MEMORY = 8 << 20
MAX_UNPACKED = 1 << 30
_CHUNK = 1 << 20

log = logging.getLogger(__name__)

SOURCE_KEYS = ("source", "url", "source_url", "origin")
LICENSE_KEYS = ("license", "licence", "license_id", "spdx")

# Media a browser may show inline from this origin; anything else is served as a download,
# so an uploaded HTML or SVG file can never run in a facility page.
INLINE_TYPES = {
    "image/png", "image/jpeg", "image/gif", "image/webp",
    "audio/wav", "audio/flac", "audio/mpeg", "audio/ogg", "audio/webm",
    "video/mp4", "video/webm", "video/ogg",
    "text/plain",
}  # fmt: skip
_EXTRA_TYPES = {
    ".ogg": "audio/ogg", ".oga": "audio/ogg", ".ogv": "video/ogg", ".gif": "image/gif",
    ".webp": "image/webp", ".weba": "audio/webm", ".cls": "text/plain", ".caption": "text/plain",
    ".text": "text/plain", ".py": "text/plain", ".md": "text/plain",
}  # fmt: skip


class UnreadableRecords(InvalidInput):
    """The file is not what its name says (a corrupt shard, a broken Parquet footer, ...)."""


class RecordNotFound(NotFound):
    """No record at that index, or no member of that name in it."""


@dataclass(frozen=True)
class Member:
    """One part of a record: a text field, or a media object served on its own."""

    name: str
    kind: str  # text | image | audio | video | json | binary
    media_type: str
    size: int
    text: str | None = None  # for text and json: the value (cut at MAX_TEXT)
    truncated: bool = False


@dataclass(frozen=True)
class Record:
    index: int
    key: str
    members: list[Member]
    source: str | None
    source_from: str  # "record" | "version" | "none"
    license: str | None
    license_from: str

    @property
    def preview(self) -> str:
        for m in self.members:
            if m.kind == "text" and m.text:
                text = " ".join(m.text.split())
                return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"
        return ""

    @property
    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.members if m.kind in ("image", "audio", "video")})


@dataclass(frozen=True)
class RecordPage:
    records: list[Record]
    offset: int
    total: int | None  # unknown for JSONL until the file has been read to its end
    has_more: bool


@dataclass(frozen=True)
class MemberData:
    """A member's bytes: a range of the stored object (a tar member), bytes in hand, or a
    member of a compressed shard unpacked into `file` (seekable; the caller closes it)."""

    media_type: str
    size: int
    path: Path | None = None
    offset: int = 0
    data: bytes | None = None
    inline: bool = field(default=False)
    file: IO[bytes] | None = None


@dataclass(frozen=True)
class Fallback:
    """What the version declares, for records that do not say it themselves."""

    licenses: list[str]
    sources: list[dict[str, Any]]

    def license(self) -> str | None:
        return " AND ".join(self.licenses) if self.licenses else None

    def source(self) -> str | None:
        names = [str(s.get("url") or s.get("name") or "") for s in self.sources]
        names = [n for n in names if n]
        return "; ".join(names) if names else None


FORMATS = ("jsonl", "parquet", "webdataset")
_GZIP_SHARDS = (".tar.gz", ".tgz")


def record_format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith((".tar", *_GZIP_SHARDS)):
        return "webdataset"
    return None


def _gzipped(name: str) -> bool:
    return name.lower().endswith(_GZIP_SHARDS)


def shard_compression(path: str) -> str | None:
    """The media type a WebDataset shard is compressed with (`application/gzip`), or None."""
    return "application/gzip" if _gzipped(path) else None


def _media_type(name: str) -> str:
    ext = posixpath.splitext(name)[1].lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    found = metadata.media_type(name)
    return "audio/wav" if found in ("audio/x-wav", "audio/wave") else found


def _kind(media_type: str) -> str:
    if media_type == "application/json":
        return "json"
    if media_type.startswith("text/"):
        return "text"  # served as text/plain whatever it claims (HTML never renders here)
    for prefix in ("image", "audio", "video"):
        if media_type.startswith(prefix + "/") and media_type in INLINE_TYPES:
            return prefix
    return "binary"  # SVG and the like: a download, never shown inline


def _sniff(data: bytes) -> str:
    """The media type of bytes found in a row, from their first bytes."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return "application/octet-stream"


def _text(value: str) -> tuple[str, bool]:
    return (value, False) if len(value) <= MAX_TEXT else (value[:MAX_TEXT], True)


def _provenance(
    fields: dict[str, Any], fallback: Fallback
) -> tuple[str | None, str, str | None, str]:
    source = next((fields[k] for k in SOURCE_KEYS if isinstance(fields.get(k), str)), None)
    license_ = next((fields[k] for k in LICENSE_KEYS if isinstance(fields.get(k), str)), None)
    if source:
        source_from = "record"
    else:
        source = fallback.source()
        source_from = "version" if source else "none"
    if license_:
        license_, license_from = metadata.normalise_license(license_), "record"
    else:
        license_ = fallback.license()
        license_from = "version" if license_ else "none"
    return source, source_from, license_, license_from


# Rows: JSONL and Parquet ---------------------------------------------------------------------


def _row_members(row: dict[str, Any]) -> tuple[list[Member], dict[str, bytes]]:
    """A row's fields as members; bytes (or the Hub's {"bytes", "path"} media) as media."""
    members: list[Member] = []
    blobs: dict[str, bytes] = {}
    for name, value in row.items():
        blob = None
        hint = None
        if isinstance(value, bytes | bytearray):
            blob = bytes(value)
        elif isinstance(value, dict) and isinstance(value.get("bytes"), bytes | bytearray):
            blob, hint = bytes(value["bytes"]), value.get("path")
        if blob is not None:
            media = _media_type(hint) if isinstance(hint, str) and hint else _sniff(blob)
            if media == "application/octet-stream":
                media = _sniff(blob)
            members.append(Member(str(name), _kind(media), media, len(blob)))
            blobs[str(name)] = blob
            continue
        if isinstance(value, str):
            text, cut = _text(value)
            members.append(Member(str(name), "text", "text/plain", len(value), text, cut))
        else:
            raw = json.dumps(value, ensure_ascii=False, default=str)
            text, cut = _text(raw)
            members.append(Member(str(name), "json", "application/json", len(raw), text, cut))
    return members, blobs


def _row_record(index: int, row: Any, fallback: Fallback) -> tuple[Record, dict[str, bytes]]:
    if not isinstance(row, dict):
        row = {"value": row}
    members, blobs = _row_members(row)
    return Record(index, str(index), members, *_provenance(row, fallback)), blobs


_SKIPPED = object()


def _lines(fh: IO[bytes], name: str, line_no: int) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of each non-blank line from where `fh` is, whose
    line number is `line_no` + 1. A line is cut at b"\n" (a CRLF line keeps its "\r", which
    JSON reads as space), and a blank one is only whitespace."""
    pos = fh.tell()
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE:
            raise UnreadableRecords(f"{name}: line {line_no} is longer than {MAX_LINE} bytes")
        if line.strip():
            yield line_no, pos, line
        pos += len(line)


def _parse(line: bytes, name: str, line_no: int) -> Any:
    try:
        return json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise UnreadableRecords(
            f"{name}: line {line_no} is not JSON: a JSONL file holds one JSON value per line"
        ) from None


def _jsonl_rows(path: Path, name: str, *, skip: int = 0) -> Iterator[tuple[int, Any]]:
    """(index, JSON value) of each non-blank line. The first `skip` records are counted, not
    parsed (they yield a placeholder), and with a line index only from the indexed record
    nearest before `skip`: paging deep into a file costs a seek and at most INDEX_EVERY lines."""
    index = _line_index(path) if skip >= INDEX_EVERY else None
    first, offset, line_no = index.start(skip) if index else (0, 0, 0)
    with path.open("rb") as fh:
        if offset:
            fh.seek(offset - 1)
            if fh.read(1) != b"\n":  # not where a line starts: an index of other bytes
                log.warning("%s: its line index does not fit it; reading from the start", name)
                first = line_no = 0
                fh.seek(0)
        for i, (n, _, line) in enumerate(_lines(fh, name, line_no), start=first):
            yield i, (_SKIPPED if i < skip else _parse(line, name, n))


# A JSONL file's sparse line index: where every INDEX_EVERY-th record starts and how many lines
# come before it, and how many records the file holds. Written when a version is published
# (the summary reads every line anyway) beside the store's objects, named by the object's
# BLAKE3: those bytes never change, so it is computed once, and no table holds it. A file
# without one (not in the store, published before indexes) is read from its start.
INDEX_EVERY = 4096
_INDEX_MAGIC = b"CLJSONL1"
_INDEX_HEAD = struct.Struct("<8sQQQ")  # magic, the file's size, INDEX_EVERY, records
_INDEX_ENTRY = struct.Struct("<QQ")  # byte offset of record k * every, lines before it


def line_index_path(path: Path) -> Path | None:
    """Where the line index of a stored object is kept (see `store.derived_path`); None for a
    file outside the store."""
    return derived_path(path, ".lines")


@dataclass(frozen=True)
class _LineIndex:
    path: Path
    every: int
    records: int

    def start(self, record: int) -> tuple[int, int, int]:
        """(index, byte offset, lines before) of the indexed record at or before `record`."""
        if not self.records:
            return 0, 0, 0
        k = min(record // self.every, (self.records - 1) // self.every)
        with self.path.open("rb") as fh:
            fh.seek(_INDEX_HEAD.size + k * _INDEX_ENTRY.size)
            offset, lines = _INDEX_ENTRY.unpack(fh.read(_INDEX_ENTRY.size))
        return k * self.every, offset, lines


def _line_index(path: Path) -> _LineIndex | None:
    """The file's line index, if it has one that fits it (else it is read from its start)."""
    where = line_index_path(path)
    if where is None:
        return None
    try:
        with where.open("rb") as fh:
            head = fh.read(_INDEX_HEAD.size)
            length = os.fstat(fh.fileno()).st_size
        magic, size, every, count = _INDEX_HEAD.unpack(head)
        entries = -(-count // every) if every else -1
        if (
            magic != _INDEX_MAGIC
            or size != path.stat().st_size
            or length != _INDEX_HEAD.size + entries * _INDEX_ENTRY.size
        ):
            return None
    except (OSError, struct.error):
        return None
    return _LineIndex(where, every, count)


def _write_line_index(path: Path, entries: list[tuple[int, int]], records: int) -> None:
    """Keep the index beside the object (temp file + rename: a reader sees all or none). The
    index is a cache: a store it cannot be written to is read from each file's start."""
    where = line_index_path(path)
    if where is None:
        return
    body = _INDEX_HEAD.pack(_INDEX_MAGIC, path.stat().st_size, INDEX_EVERY, records) + b"".join(
        _INDEX_ENTRY.pack(offset, lines) for offset, lines in entries
    )
    tmp: str | None = None
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=where.parent, prefix=".lines-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, where)
        tmp = None
    except OSError as exc:
        log.warning("could not keep the line index of %s: %s", path.name, exc)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _parquet(path: Path, name: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the data extra is installed with the tests
        raise UnreadableRecords(
            f"{name}: this facility cannot read Parquet (install commonlab[data])"
        ) from None
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a broken file
        raise UnreadableRecords(f"{name}: not a readable Parquet file ({exc})") from None


def _parquet_rows(path: Path, name: str, start: int, stop: int) -> tuple[list[Any], int]:
    """Rows [start, stop) and the row count, reading only the row groups that hold them."""
    pf = _parquet(path, name)
    total = pf.metadata.num_rows
    rows: list[Any] = []
    first = 0
    try:
        for group in range(pf.metadata.num_row_groups):
            count = pf.metadata.row_group(group).num_rows
            if first + count > start and first < stop:
                table = pf.read_row_group(group)
                lo, hi = max(start - first, 0), min(stop - first, count)
                rows.extend(table.slice(lo, hi - lo).to_pylist())
            first += count
            if first >= stop:
                break
    except Exception as exc:
        raise UnreadableRecords(
            f"{name}: a row group of this Parquet file is broken ({exc})"
        ) from None
    return rows, total


# WebDataset shards ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _TarMember:
    name: str  # the extension part: "jpg", "json", "seg.png"
    path: str
    offset: int  # where its bytes are in the stored shard; -1 in a compressed one
    size: int
    data: bytes | None = None  # a compressed shard's text and JSON members, read on the way
    spool: IO[bytes] | None = None  # the member asked for, unpacked from a compressed shard


def _split_key(path: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the file name."""
    folder, _, base = path.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext if dot else ""


def _samples(
    path: Path, name: str, *, grab: tuple[int, str] | None = None
) -> Iterator[tuple[str, list[_TarMember]]]:
    """The shard's samples in order: runs of regular files sharing a key. Of a `.tar`, headers
    only are read (data is skipped over); a `.tar.gz` is read as one stream, keeping on the
    way its small text and JSON members and the member `grab` names (sample index, member
    name). Nothing is ever extracted to disk under its own name."""
    gzipped = _gzipped(name)
    try:
        with contextlib.ExitStack() as stack:
            if gzipped:
                raw = stack.enter_context(gzip.open(path, "rb"))
                tar = stack.enter_context(tarfile.open(fileobj=raw, mode="r|"))
            else:
                tar = stack.enter_context(tarfile.open(path, mode="r:"))
            key: str | None = None
            group: list[_TarMember] = []
            index = -1
            for info in tar:
                if not info.isfile():
                    continue  # folders, links, devices: never part of a sample
                k, ext = _split_key(info.name)
                if k != key:
                    if group:
                        yield key or "", group
                        group = []
                    index += 1
                    key = k
                if not gzipped:
                    group.append(_TarMember(ext, info.name, info.offset_data, info.size))
                    continue
                wanted = grab == (index, ext) and all(p.name != ext for p in group)
                group.append(_unpack(tar, info, ext, name=name, wanted=wanted))
            if group:
                yield key or "", group
            if gzipped:  # to the gzip trailer, whose CRC says whether every byte was sound
                while raw.read(_CHUNK):
                    pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise UnreadableRecords(f"{name}: not a readable WebDataset tar shard ({exc})") from None


def _unpack(tar: tarfile.TarFile, info: tarfile.TarInfo, ext: str, *, name: str,
            wanted: bool) -> _TarMember:  # fmt: skip
    """A member of a compressed shard as the stream passes it: its bytes kept when it is a
    small text or JSON member (the viewer shows those) or the one asked for."""
    small = info.size <= MAX_SIDECAR
    if small and (wanted or _kind(_media_type(info.name)) in ("text", "json")):
        return _TarMember(ext, info.name, -1, info.size, data=_extract(tar, info).read())
    if not wanted:
        return _TarMember(ext, info.name, -1, info.size)
    if info.size > MAX_UNPACKED:
        raise UnreadableRecords(
            f"{name}: {info.name} is {info.size} bytes, more than the {MAX_UNPACKED} this "
            "facility unpacks from a compressed shard to serve; publish it in a .tar shard"
        )
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    shutil.copyfileobj(_extract(tar, info), spool, _CHUNK)
    spool.seek(0)
    return _TarMember(ext, info.name, -1, info.size, spool=spool)


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    member = tar.extractfile(info)
    if member is None:  # pragma: no cover - regular files always have their bytes
        raise tarfile.ReadError(f"{info.name} has no bytes")
    return member


def _member_bytes(path: Path, part: _TarMember) -> bytes:
    if part.data is not None:
        return part.data
    if part.offset < 0:  # pragma: no cover - callers ask only for what the stream kept
        raise UnreadableRecords(f"{part.path} was not kept from its compressed shard")
    with path.open("rb") as fh:
        fh.seek(part.offset)
        return fh.read(part.size)


def _sample_record(
    path: Path, index: int, key: str, parts: list[_TarMember], fallback: Fallback
) -> Record:
    members: list[Member] = []
    sidecar = _sidecar(path, parts)
    for part in parts:
        media = _media_type(part.path)
        kind = _kind(media)
        if kind in ("text", "json") and part.size <= MAX_SIDECAR:
            raw = _member_bytes(path, part)
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                members.append(Member(part.name, "binary", "application/octet-stream", part.size))
                continue
            text, cut = _text(value)
            members.append(Member(part.name, kind, media, part.size, text, cut))
        else:
            members.append(Member(part.name, kind, media, part.size))
    return Record(index, key, members, *_provenance(sidecar, fallback))


# Reading -------------------------------------------------------------------------------------


def check_format(name: str) -> str:
    fmt = record_format(name)
    if fmt is None:
        raise InvalidInput(
            f"{name} holds no records this registry reads: records come from JSONL, Parquet "
            "or WebDataset .tar (or .tar.gz) files"
        )
    return fmt


def _items(
    path: Path, name: str, fmt: str, *, skip: int = 0, grab: tuple[int, str] | None = None
) -> Iterator[tuple[int, Any]]:
    """(index, row or sample) of a JSONL file or a shard, from the start or, for JSONL, from
    an indexed record at or before `skip` (the records before `skip` are placeholders)."""
    if fmt == "jsonl":
        return _jsonl_rows(path, name, skip=skip)
    return enumerate(_samples(path, name, grab=grab))


def read_page(path: Path, name: str, *, offset: int, limit: int, fallback: Fallback) -> RecordPage:
    """Records [offset, offset + limit) of a stored file (an empty page past its end)."""
    fmt = check_format(name)
    limit = max(1, min(limit, MAX_PAGE))
    if fmt == "parquet":
        rows, total = _parquet_rows(path, name, offset, offset + limit)
        records = [_row_record(offset + i, row, fallback)[0] for i, row in enumerate(rows)]
        return RecordPage(records, offset, total, offset + len(records) < total)
    records: list[Record] = []
    seen = 0
    has_more = False
    for index, item in _items(path, name, fmt, skip=offset):
        seen = index + 1
        if index < offset:
            continue
        if len(records) == limit:
            has_more = True
            break
        if fmt == "jsonl":
            records.append(_row_record(index, item, fallback)[0])
        else:
            records.append(_sample_record(path, index, item[0], item[1], fallback))
    total: int | None = None if has_more else seen
    if total is None and fmt == "jsonl" and (index_ := _line_index(path)):
        total = index_.records
    return RecordPage(records, offset, total, has_more)


def iter_file_records(path: Path, name: str, *, fallback: Fallback) -> Iterator[Record]:
    """Every record of a file, in one pass, numbered as `read_page` numbers them: for jobs
    that read whole files (a search index, a version without opted-out records), where
    paging would read a file from its start once per page."""
    fmt = check_format(name)
    if fmt != "parquet":
        for index, item in _items(path, name, fmt):
            if fmt == "jsonl":
                yield _row_record(index, item, fallback)[0]
            else:
                yield _sample_record(path, index, item[0], item[1], fallback)
        return
    pf = _parquet(path, name)
    index = 0
    batches = pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:
            raise UnreadableRecords(
                f"{name}: a row group of this Parquet file is broken ({exc})"
            ) from None
        if batch is None:
            return
        for row in batch.to_pylist():
            yield _row_record(index, row, fallback)[0]
            index += 1


_PARQUET_BATCH_ROWS = 1024


def _out_of_range(name: str, index: int, total: int) -> RecordNotFound:
    return RecordNotFound(
        f"{name} has no record {index}: it holds {total} record"
        f"{'' if total == 1 else 's'}, numbered from 0"
    )


def _find(
    path: Path, name: str, index: int, fallback: Fallback, *, member: str | None = None
) -> tuple[Record, Any]:
    fmt = check_format(name)
    if fmt == "parquet":
        rows, total = _parquet_rows(path, name, index, index + 1)
        if not rows:
            raise _out_of_range(name, index, total)
        return _row_record(index, rows[0], fallback)
    grab = (index, member) if member is not None else None
    count = 0
    for i, item in _items(path, name, fmt, skip=index, grab=grab):
        count = i + 1
        if i == index:
            if fmt == "jsonl":
                return _row_record(index, item, fallback)
            return _sample_record(path, index, item[0], item[1], fallback), item[1]
    raise _out_of_range(name, index, count)


def read_record(path: Path, name: str, index: int, *, fallback: Fallback) -> Record:
    return _find(path, name, index, fallback)[0]


def has_record(path: Path, name: str, index: int) -> bool:
    """Whether the file holds a record at `index` (counting, not reading, what comes before)."""
    fmt = check_format(name)
    if fmt == "parquet":
        return index < _parquet(path, name).metadata.num_rows
    if fmt == "jsonl" and (line_index := _line_index(path)):
        return index < line_index.records
    try:
        return any(i == index for i, _ in _items(path, name, fmt, skip=index + 1))
    except UnreadableRecords:
        return True  # it is there, and its page will say what is wrong with it


def member_data(
    path: Path, name: str, index: int, member: str, *, fallback: Fallback
) -> MemberData:
    """The bytes of one member of a record, with the type to serve them as."""
    record, extra = _find(path, name, index, fallback, member=member)
    found = next((m for m in record.members if m.name == member), None)
    if found is None:
        names = ", ".join(m.name for m in record.members) or "none"
        raise RecordNotFound(f"record {index} of {name} has no member {member!r} (it has {names})")
    inline = found.media_type in INLINE_TYPES
    media_type = found.media_type if inline else "application/octet-stream"
    if isinstance(extra, dict):  # a row: text fields and bytes in hand
        if member in extra:
            return MemberData(media_type, found.size, data=extra[member], inline=inline)
        text = (found.text or "").encode("utf-8")
        return MemberData("text/plain; charset=utf-8", len(text), data=text, inline=True)
    part = next(p for p in extra if p.name == member)
    if found.kind == "text":  # whatever it claims (text/html too): plain text, safe inline
        media_type, inline = "text/plain; charset=utf-8", True
    if part.spool is not None:
        return MemberData(media_type, part.size, file=part.spool, inline=inline)
    if part.offset < 0:
        return MemberData(media_type, part.size, data=part.data, inline=inline)
    return MemberData(media_type, part.size, path=path, offset=part.offset, inline=inline)


# What a file's records say about themselves, read once when a version is published --------

SUMMARY_RECORDS = 1_000_000
SUMMARY_SOURCES = 20
SUMMARY_LICENSES = 50
_Take = Callable[[dict[str, Any]], None]


def summarize(path: Path, name: str, *, limit: int | None = None) -> dict[str, Any]:
    """How many records a file holds, exactly however many, and which sources and licences
    the first `limit` of them (SUMMARY_RECORDS) state: the most common sources, every
    licence, for the version's page, its licence flags and its lineage. `tallied` says how
    many records the tally covers; `complete`, whether that is all of them. A JSONL file's
    line index is written on the way."""
    limit = SUMMARY_RECORDS if limit is None else limit
    fmt = check_format(name)
    sources: Counter[str] = Counter()
    licenses: Counter[str] = Counter()
    without_source = without_license = 0

    def take(fields: dict[str, Any]) -> None:
        nonlocal without_source, without_license
        source, _, license_, _ = _provenance(fields, _NOTHING)
        if source:
            sources[source] += 1
        else:
            without_source += 1
        if license_:
            licenses[license_] += 1
        else:
            without_license += 1

    if fmt == "parquet":
        count = _tally_parquet(path, name, limit, take)
    elif fmt == "jsonl":
        count = _tally_jsonl(path, name, limit, take)
    else:
        count = 0
        for index, (_, parts) in enumerate(_samples(path, name)):
            count = index + 1
            if index < limit:
                take(_sidecar(path, parts))
    tallied = min(count, limit)
    return {
        "format": fmt,
        "records": count,
        "tallied": tallied,
        "complete": tallied == count,
        "sources": [[s, n] for s, n in sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))][
            :SUMMARY_SOURCES
        ],
        "distinct_sources": len(sources),
        "licenses": dict(sorted(licenses.most_common(SUMMARY_LICENSES))),
        "without_source": without_source,
        "without_license": without_license,
    }


def _tally_parquet(path: Path, name: str, limit: int, take: _Take) -> int:
    """The row count from the footer; the first `limit` rows' source and licence columns."""
    pf = _parquet(path, name)
    total = pf.metadata.num_rows
    names = set(pf.schema_arrow.names)
    wanted = [k for k in (*SOURCE_KEYS, *LICENSE_KEYS) if k in names]
    if not wanted:
        for _ in range(min(total, limit)):
            take({})
        return total
    seen = 0
    try:
        for batch in pf.iter_batches(batch_size=65_536, columns=wanted):
            for row in batch.slice(0, limit - seen).to_pylist():
                take(row)
            seen += min(batch.num_rows, limit - seen)
            if seen >= limit:
                break
    except Exception as exc:
        raise UnreadableRecords(
            f"{name}: a row group of this Parquet file is broken ({exc})"
        ) from None
    return total


def _tally_jsonl(path: Path, name: str, limit: int, take: _Take) -> int:
    """Every line counted (the first `limit` records parsed and tallied, as the viewer reads
    them), and the line index written: where every INDEX_EVERY-th record starts."""
    entries: list[tuple[int, int]] = []
    count = 0
    with path.open("rb") as fh:
        for line_no, pos, line in _lines(fh, name, 0):
            if count % INDEX_EVERY == 0:
                entries.append((pos, line_no - 1))
            if count < limit:
                row = _parse(line, name, line_no)
                take(row if isinstance(row, dict) else {})
            count += 1
    _write_line_index(path, entries, count)
    return count


_NOTHING = Fallback([], [])


def _sidecar(path: Path, parts: list[_TarMember]) -> dict[str, Any]:
    candidates = [p for p in parts if _kind(_media_type(p.path)) == "json"]
    candidates.sort(key=lambda p: p.name != "json")  # `key.json` first, as the viewer reads
    part = next((p for p in candidates if p.size <= MAX_SIDECAR), None)
    if part is None:
        return {}
    try:
        parsed = json.loads(_member_bytes(path, part))
    except (UnicodeDecodeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def shard_members(path: Path, name: str) -> dict[str, tuple[str, str]]:
    """A WebDataset shard's member extensions: extension → (kind, media type), in the order
    first seen. An unreadable shard has none (the viewer says what is wrong with it)."""
    found: dict[str, tuple[str, str]] = {}
    try:
        for _, parts in _samples(path, name):
            for part in parts:
                if part.name and part.name not in found:
                    media = _media_type(part.path)
                    found[part.name] = (_kind(media), media)
    except UnreadableRecords:
        return {}
    return found


# How a record is shown (the API and the portal) ------------------------------------------------


def provenance(record: Record) -> dict[str, Any]:
    """Where a record came from and under which licence, and whether it said so itself."""
    return {
        "source": record.source,
        "source_from": record.source_from,
        "license": record.license,
        "license_from": record.license_from,
    }


def record_out(record: Record, file: str, base: str, *, has_next: bool) -> RecordOut:
    """A record in full, each media member with its URL under `base` (the version's)."""

    def url(member: str) -> str:
        query = urlencode({"file": file, "member": member})
        return f"{base}/records/{record.index}/media?{query}"

    return RecordOut(
        file=file,
        format=record_format(file) or "",
        index=record.index,
        key=record.key,
        members=[
            MemberOut(
                name=m.name,
                kind=m.kind,
                media_type=m.media_type,
                size=m.size,
                text=m.text,
                truncated=m.truncated,
                url=url(m.name),
            )
            for m in record.members
        ],
        has_next=has_next,
        **provenance(record),
    )
