"""What the registry reads from files and declarations: safe paths, media types, safetensors
headers, model cards (YAML front matter + Markdown) and SPDX licences. Pure functions."""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from commonlab.errors import InvalidInput

__all__ = [
    "LICENSES",
    "ModelCard",
    "check_path",
    "license_flags",
    "media_type",
    "parse_card",
    "read_safetensors_header",
]

MAX_PATH = 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def check_path(path: str) -> str:
    """A relative POSIX path inside the repository, or InvalidInput saying what is wrong."""
    if not path or len(path) > MAX_PATH:
        raise InvalidInput(f"file path {path[:80]!r}: must be 1 to {MAX_PATH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in path) or "\\" in path:
        raise InvalidInput(f"file path {path!r}: no control characters or backslashes")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise InvalidInput(f"file path {path!r}: must be relative, not absolute")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInput(f"file path {path!r}: no '..', '.' or empty parts")
    if parts[0] == ".commonlab":
        raise InvalidInput(f"file path {path!r}: .commonlab/ is reserved for local bookkeeping")
    if posixpath.normpath(path) != path:
        raise InvalidInput(f"file path {path!r}: not in normal form")
    return path


_MEDIA = {
    ".safetensors": "application/vnd.safetensors",
    ".jsonl": "application/jsonl",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown",
    ".json": "application/json",
    ".tar": "application/x-tar",
    ".csv": "text/csv",
    ".txt": "text/plain",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}


def media_type(path: str) -> str:
    ext = posixpath.splitext(path)[1].lower()
    return _MEDIA.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def read_safetensors_header(fh: BinaryIO, size: int, *, path: str) -> dict[str, Any]:
    """Validate a safetensors file's header; returns its `__metadata__` and tensor count.

    Checks the header length, that it is a JSON object, every tensor's dtype, shape and
    byte range, and that the ranges tile the data section exactly (as the format requires).
    """

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"{path}: not a valid safetensors file: {why}")

    head = fh.read(8)
    if len(head) != 8:
        raise bad("shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
        raise bad(f"header length {length} does not fit in a {size}-byte file")
    raw = fh.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad("__metadata__ must map strings to strings")
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has a bad shape")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise bad(f"tensor {name!r} has bad data_offsets")
        count = 1
        for dim in shape:
            count *= dim
        if offsets[1] - offsets[0] != count * _DTYPES[dtype]:
            raise bad(f"tensor {name!r}: its byte range does not match dtype and shape")
        spans.append((offsets[0], offsets[1]))
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise bad("tensor byte ranges overlap or leave gaps")
        end = stop
    if 8 + length + end != size:
        raise bad(f"the tensors cover {end} bytes but the data section is {size - 8 - length}")
    return {"tensors": len(spans), "metadata": metadata}


# Keys commonlab reads in a safetensors file's `__metadata__`: what the weights say they are.
STAMP_REPOSITORY = "commonlab.repository"
STAMP_VERSION = "commonlab.version"
STAMP_JOB = "commonlab.job"


def stamp_mismatches(
    stamp: dict[str, str], *, repository: str, version: int, job: str | None
) -> list[str]:
    """How weights' commonlab keys contradict the version being published (none missing is
    wrong: unstamped weights are published as they are)."""
    wrong = []
    if STAMP_REPOSITORY in stamp and stamp[STAMP_REPOSITORY] != repository:
        wrong.append(f"{STAMP_REPOSITORY} is {stamp[STAMP_REPOSITORY]!r}, not {repository!r}")
    if STAMP_VERSION in stamp and stamp[STAMP_VERSION] != str(version):
        wrong.append(f"{STAMP_VERSION} is {stamp[STAMP_VERSION]!r}: this is version {version}")
    if STAMP_JOB in stamp and stamp[STAMP_JOB] != (job or ""):
        named = f"job {job}" if job else "no job"
        wrong.append(f"{STAMP_JOB} is {stamp[STAMP_JOB]!r} but the version names {named}")
    return wrong


def stamp_safetensors(path: Path, stamp: dict[str, str]) -> None:
    """Write `stamp` into a safetensors file's `__metadata__`, replacing the file atomically.

    Only the header changes: the tensors' bytes are copied after it in the kernel (their
    offsets are relative to the data section, so they stay valid)."""
    size = path.stat().st_size
    with path.open("rb") as src:
        read_safetensors_header(src, size, path=path.name)
        src.seek(0)
        (length,) = struct.unpack("<Q", src.read(8))
        header = json.loads(src.read(length))
        header["__metadata__"] = {**(header.get("__metadata__") or {}), **stamp}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
        tmp = path.with_name(f".{path.name}.stamping")
        with tmp.open("wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            out.flush()
            offset, left = 8 + length, size - 8 - length
            while left:
                n = os.copy_file_range(src.fileno(), out.fileno(), left, offset)
                if n == 0:
                    raise InvalidInput(f"{path.name} shrank while it was being stamped")
                offset, left = offset + n, left - n
    os.replace(tmp, path)


@dataclass(frozen=True)
class ModelCard:
    """A model card: its YAML front matter (the Hub's convention) and its Markdown body."""

    meta: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    @property
    def licenses(self) -> list[str]:
        value = self.meta.get("license")
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [str(v) for v in value]
        return []


def parse_card(text: str, *, path: str = "README.md") -> ModelCard:
    """Split and parse `---\\nYAML\\n---\\nMarkdown`; a card without front matter is all body."""
    import yaml

    if not text.startswith("---"):
        return ModelCard({}, text)
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)(.*)$", text, re.S)
    if not match:
        raise InvalidInput(f"{path}: the YAML front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: the YAML front matter does not parse ({exc})") from None
    if not isinstance(meta, dict):
        raise InvalidInput(f"{path}: the YAML front matter must be a mapping (key: value)")
    return ModelCard(json.loads(json.dumps(meta, default=str)), match.group(2))


# SPDX identifiers the registry knows, by family. Two families that may not be combined in
# one release are listed in _CLASHES; an id outside this table is "unknown".
LICENSES: dict[str, str] = {
    **dict.fromkeys(
        ["Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Unlicense", "CC0-1.0",
         "CC-BY-4.0", "Zlib", "PDDL-1.0", "ODC-By-1.0", "BSL-1.0", "Python-2.0"],
        "permissive",
    ),
    **dict.fromkeys(["MPL-2.0", "LGPL-2.1-only", "LGPL-3.0-only", "EPL-2.0"], "weak-copyleft"),
    **dict.fromkeys(["GPL-2.0-only"], "gpl2-only"),
    **dict.fromkeys(
        ["GPL-3.0-only", "GPL-3.0-or-later", "AGPL-3.0-only", "GPL-2.0-or-later"], "gpl3"
    ),
    **dict.fromkeys(["CC-BY-SA-4.0", "ODbL-1.0"], "share-alike"),
    **dict.fromkeys(["CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0"], "non-commercial"),
    **dict.fromkeys(["OpenRAIL", "CreativeML-OpenRAIL-M", "OpenRAIL-M"], "use-restricted"),
}  # fmt: skip
_CLASHES = {
    frozenset({"gpl2-only", "gpl3"}),
    frozenset({"gpl2-only", "share-alike"}),
    frozenset({"gpl3", "share-alike"}),
    frozenset({"gpl2-only", "non-commercial"}),
    frozenset({"gpl3", "non-commercial"}),
    frozenset({"share-alike", "non-commercial"}),
    frozenset({"gpl3", "use-restricted"}),
    frozenset({"gpl2-only", "use-restricted"}),
    frozenset({"share-alike", "use-restricted"}),
}
_BY_LOWER = {name.lower(): name for name in LICENSES}


def normalise_license(value: str) -> str:
    """The SPDX id in its canonical case when known; the text as given otherwise."""
    return _BY_LOWER.get(value.strip().lower(), value.strip())


def license_flags(licenses: Iterable[str]) -> list[str]:
    """What a page should warn about: unknown ids and families that cannot be combined."""
    flags: list[str] = []
    families: dict[str, str] = {}
    for name in sorted(set(licenses)):
        family = LICENSES.get(name)
        if family is None:
            flags.append(f"unknown licence {name!r}: not an SPDX id this registry knows")
        else:
            families.setdefault(family, name)
    for pair in sorted(_CLASHES, key=sorted):
        if pair <= families.keys():
            a, b = sorted(families[f] for f in pair)
            flags.append(f"incompatible licences: {a} and {b} cannot be combined in one release")
    return flags
