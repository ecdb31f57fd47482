"""The records of a dataset version, read from its files as they are stored: rows of JSONL and
Parquet files (text, code, media in a column) and samples of WebDataset `.tar` shards (an
image, audio or video with its `.json` sidecar). Each record says where it came from and
under which licence: from its own fields or sidecar when it has them, else from the
version's declaration, and it says which. Nothing here authorizes: callers do, first."""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commonlab.artifacts import metadata
from commonlab.errors import InvalidInput, NotFound

__all__ = [
    "FORMATS",
    "Member",
    "MemberData",
    "Record",
    "RecordNotFound",
    "RecordPage",
    "UnreadableRecords",
    "check_format",
    "has_record",
    "member_data",
    "read_page",
    "read_record",
    "record_format",
    "shard_members",
    "summarize",
]

# A line of JSONL, a sidecar, a text member: past these, a record is refused or cut short.
MAX_LINE = 16 << 20
MAX_SIDECAR = 1 << 20
MAX_TEXT = 1 << 20
PREVIEW = 240
MAX_PAGE = 100

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
    """A member's bytes: a range of the stored object (a tar member), or bytes in hand."""

    media_type: str
    size: int
    path: Path | None = None
    offset: int = 0
    data: bytes | None = None
    inline: bool = field(default=False)


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


def record_format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith(".tar"):
        return "webdataset"
    return None


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


def _jsonl_rows(path: Path, name: str, *, skip: int = 0) -> Iterator[Any]:
    """Each non-blank line's JSON value; the first `skip` records are counted, not parsed
    (they yield a placeholder), so paging deep into a file costs a read, not a parse."""
    with path.open("rb") as fh:
        line_no = records = 0
        while True:
            line = fh.readline(MAX_LINE + 1)
            if not line:
                return
            line_no += 1
            if len(line) > MAX_LINE:
                raise UnreadableRecords(f"{name}: line {line_no} is longer than {MAX_LINE} bytes")
            if not line.strip():
                continue
            records += 1
            if records <= skip:
                yield _SKIPPED
                continue
            try:
                yield json.loads(line)
            except (UnicodeDecodeError, ValueError):
                raise UnreadableRecords(
                    f"{name}: line {line_no} is not JSON: a JSONL file holds one JSON value "
                    "per line"
                ) from None


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
    offset: int
    size: int


def _split_key(path: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the file name."""
    folder, _, base = path.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext if dot else ""


def _samples(path: Path, name: str) -> Iterator[tuple[str, list[_TarMember]]]:
    """The shard's samples in order: runs of regular files sharing a key. Headers only are
    read (data is skipped over), and nothing is ever extracted to disk."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            key: str | None = None
            group: list[_TarMember] = []
            for info in tar:
                if not info.isfile():
                    continue  # folders, links, devices: never part of a sample
                k, ext = _split_key(info.name)
                if k != key and group:
                    yield key or "", group
                    group = []
                key = k
                group.append(_TarMember(ext, info.name, info.offset_data, info.size))
            if group:
                yield key or "", group
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UnreadableRecords(f"{name}: not a readable WebDataset tar shard ({exc})") from None


def _read_range(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def _sample_record(
    path: Path, index: int, key: str, parts: list[_TarMember], fallback: Fallback
) -> Record:
    members: list[Member] = []
    sidecar = _sidecar(path, parts)
    for part in parts:
        media = _media_type(part.path)
        kind = _kind(media)
        if kind in ("text", "json") and part.size <= MAX_SIDECAR:
            raw = _read_range(path, part.offset, part.size)
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
            "or WebDataset .tar files"
        )
    return fmt


def read_page(path: Path, name: str, *, offset: int, limit: int, fallback: Fallback) -> RecordPage:
    """Records [offset, offset + limit) of a stored file (an empty page past its end)."""
    fmt = check_format(name)
    limit = max(1, min(limit, MAX_PAGE))
    if fmt == "parquet":
        rows, total = _parquet_rows(path, name, offset, offset + limit)
        records = [_row_record(offset + i, row, fallback)[0] for i, row in enumerate(rows)]
        return RecordPage(records, offset, total, offset + len(records) < total)
    source: Iterator[Any] = (
        _jsonl_rows(path, name, skip=offset) if fmt == "jsonl" else _samples(path, name)
    )
    records: list[Record] = []
    seen = 0
    has_more = False
    for index, item in enumerate(source):
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
    total = None if has_more else seen
    return RecordPage(records, offset, total, has_more)


def _out_of_range(name: str, index: int, total: int) -> RecordNotFound:
    return RecordNotFound(
        f"{name} has no record {index}: it holds {total} record"
        f"{'' if total == 1 else 's'}, numbered from 0"
    )


def _find(path: Path, name: str, index: int, fallback: Fallback) -> tuple[Record, Any]:
    fmt = check_format(name)
    if fmt == "parquet":
        rows, total = _parquet_rows(path, name, index, index + 1)
        if not rows:
            raise _out_of_range(name, index, total)
        return _row_record(index, rows[0], fallback)
    source = _jsonl_rows(path, name, skip=index) if fmt == "jsonl" else _samples(path, name)
    count = 0
    for i, item in enumerate(source):
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
    items = _jsonl_rows(path, name, skip=index + 1) if fmt == "jsonl" else _samples(path, name)
    try:
        return any(i == index for i, _ in enumerate(items))
    except UnreadableRecords:
        return True  # it is there, and its page will say what is wrong with it


def member_data(
    path: Path, name: str, index: int, member: str, *, fallback: Fallback
) -> MemberData:
    """The bytes of one member of a record, with the type to serve them as."""
    record, extra = _find(path, name, index, fallback)
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
    return MemberData(media_type, part.size, path=path, offset=part.offset, inline=inline)


# What a file's records say about themselves, read once when a version is published --------

SUMMARY_RECORDS = 1_000_000
SUMMARY_SOURCES = 20
SUMMARY_LICENSES = 50


def summarize(path: Path, name: str, *, limit: int = SUMMARY_RECORDS) -> dict[str, Any]:
    """How many records a file holds and which sources and licences they state (the most
    common sources, every licence), for the version's page, its licence flags and its
    lineage. Past `limit` records it stops and says it saw only part of the file."""
    fmt = check_format(name)
    sources: Counter[str] = Counter()
    licenses: Counter[str] = Counter()
    count = without_source = without_license = 0
    complete = True

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
        pf = _parquet(path, name)
        names = set(pf.schema_arrow.names)
        wanted = [k for k in (*SOURCE_KEYS, *LICENSE_KEYS) if k in names]
        total = pf.metadata.num_rows
        complete = total <= limit
        try:
            table = pf.read(columns=wanted).slice(0, limit) if wanted else None
        except Exception as exc:
            raise UnreadableRecords(
                f"{name}: a row group of this Parquet file is broken ({exc})"
            ) from None
        rows = table.to_pylist() if table is not None else [{}] * min(total, limit)
        for row in rows:
            take(row)
        count = len(rows)
    else:
        items: Iterator[Any] = _jsonl_rows(path, name) if fmt == "jsonl" else _samples(path, name)
        for item in items:
            if count == limit:
                complete = False
                break
            count += 1
            if fmt == "jsonl":
                take(item if isinstance(item, dict) else {})
            else:
                take(_sidecar(path, item[1]))
    return {
        "format": fmt,
        "records": count,
        "complete": complete,
        "sources": [[s, n] for s, n in sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))][
            :SUMMARY_SOURCES
        ],
        "distinct_sources": len(sources),
        "licenses": dict(sorted(licenses.most_common(SUMMARY_LICENSES))),
        "without_source": without_source,
        "without_license": without_license,
    }


_NOTHING = Fallback([], [])


def _sidecar(path: Path, parts: list[_TarMember]) -> dict[str, Any]:
    candidates = [p for p in parts if _kind(_media_type(p.path)) == "json"]
    candidates.sort(key=lambda p: p.name != "json")  # `key.json` first, as the viewer reads
    part = next((p for p in candidates if p.size <= MAX_SIDECAR), None)
    if part is None:
        return {}
    try:
        parsed = json.loads(_read_range(path, part.offset, part.size))
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
