"""Croissant 1.1 descriptions of datasets: commonlab writes the file objects (with SHA-256)
and record sets from the files of a version, merges what the publisher declared (name,
description, licence, the Responsible-AI `rai:` fields), and refuses a description that
`mlcroissant` does not validate."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from commonlab.artifacts.dataset_rows import record_format, shard_compression, shard_members
from commonlab.errors import InvalidInput

__all__ = ["CONFORMS_TO", "CONTEXT", "describe", "validate"]

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
# Croissant names its formats with these media types.
_FORMATS = {
    "application/jsonl": "application/jsonlines",
    "application/vnd.apache.parquet": "application/x-parquet",
}
# What a publisher may declare; the registry writes the rest.
DECLARABLE = re.compile(
    r"^(name|description|license|creator|citeAs|keywords|url|version|datePublished|"
    r"sameAs|inLanguage|isLiveDataset|rai:[A-Za-z]+)$"
)


def _data_type(value: Any) -> str:
    if isinstance(value, bool):
        return "sc:Boolean"
    if isinstance(value, int):
        return "sc:Integer"
    if isinstance(value, float):
        return "sc:Float"
    return "sc:Text"


def _arrow_type(arrow_type: Any) -> str:
    text = str(arrow_type)
    if text.startswith(("int", "uint")):
        return "sc:Integer"
    if text.startswith(("float", "double", "halffloat")):
        return "sc:Float"
    if text == "bool":
        return "sc:Boolean"
    return "sc:Text"


def _columns(path: str, media: str, local: Path) -> dict[str, str]:
    """Column name → Croissant data type, read from the file's first record or schema."""
    if media == "application/jsonl":
        with local.open("rb") as fh:
            line = fh.readline(1 << 20)
        try:
            first = json.loads(line)
        except ValueError:
            raise InvalidInput(f"{path}: the first line is not a JSON object") from None
        if not isinstance(first, dict):
            raise InvalidInput(f"{path}: each line of a JSONL dataset must be a JSON object")
        return {str(k): _data_type(v) for k, v in first.items()}
    if media == "application/vnd.apache.parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - the data extra is not installed
            return {}
        try:
            schema = pq.read_schema(local)
        except Exception:
            raise InvalidInput(f"{path}: not a readable Parquet file") from None
        return {field.name: _arrow_type(field.type) for field in schema}
    return {}


_OBJECT_TYPES = {
    "image": "sc:ImageObject",
    "audio": "sc:AudioObject",
    "video": "sc:VideoObject",
    "text": "sc:Text",
    "json": "sc:Text",
}


def _shard(path: str, local: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A WebDataset shard (`.tar`, `.tar.gz`): one file set per member extension inside it
    (`*.png`, `*.wav`, `*.json`, ...) and a record set of each one's content and file name."""
    sets, record_sets = [], []
    for ext, (kind, media) in shard_members(local, path).items():
        if kind not in _OBJECT_TYPES:
            continue
        set_id = f"{path}/{ext}"
        sets.append(
            {
                "@type": "cr:FileSet",
                "@id": set_id,
                "name": set_id,
                "containedIn": {"@id": path},
                "encodingFormat": media,
                "includes": f"*.{ext}",
            }
        )
        record_sets.append(
            _record_set(
                _record_set_id(f"{path}.{ext}".replace(".", "_")),
                [
                    (
                        name,
                        data_type,
                        {"fileSet": {"@id": set_id}, "extract": {"fileProperty": name}},
                    )
                    for name, data_type in (
                        ("content", _OBJECT_TYPES[kind]),
                        ("filename", "sc:Text"),
                    )
                ],
            )
        )
    return sets, record_sets


def _record_set(rs_id: str, fields: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A record set of (name, data type, source) fields."""
    return {
        "@type": "cr:RecordSet",
        "@id": rs_id,
        "name": rs_id,
        "field": [
            {
                "@type": "cr:Field",
                "@id": f"{rs_id}/{name}",
                "name": name,
                "dataType": data_type,
                "source": source,
            }
            for name, data_type, source in fields
        ],
    }


def _encoding(path: str, media: str) -> str | list[str]:
    """A file's Croissant format; a compressed shard is a tar and its compression, both named
    (mlcroissant unpacks an `application/x-tar` file object, detecting the gzip itself)."""
    if compression := shard_compression(path):
        return ["application/x-tar", compression]
    return _FORMATS.get(media, media)


def _record_set_id(path: str) -> str:
    stem = path.rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "records"


def describe(
    *,
    repository: str,
    version: int,
    files: Sequence[Mapping[str, Any]],
    locals_: Mapping[str, Path],
    base_url: str,
    commit: str,
    licenses: Sequence[str],
    declared: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Croissant document for a dataset version (not yet validated)."""
    declared = dict(declared or {})
    unknown = sorted(k for k in declared if not DECLARABLE.match(k))
    if unknown:
        raise InvalidInput(
            f"croissant: the registry writes {', '.join(unknown)} itself; declare only name, "
            "description, license, creator, citeAs, keywords and rai:* fields"
        )
    ns_name = repository
    distribution, record_sets = [], []
    for f in sorted(files, key=lambda f: f["path"]):
        distribution.append(
            {
                "@type": "cr:FileObject",
                "@id": f["path"],
                "name": f["path"],
                "contentUrl": f"{base_url}/datasets/{ns_name}/resolve/{commit}/{f['path']}",
                "encodingFormat": _encoding(f["path"], f["media_type"]),
                "contentSize": f"{f['size']} B",
                "sha256": f["sha256"],
            }
        )
        if record_format(f["path"]) == "webdataset":
            sets, shard_records = _shard(f["path"], locals_[f["path"]])
            distribution.extend(sets)
            record_sets.extend(shard_records)
        columns = _columns(f["path"], f["media_type"], locals_[f["path"]])
        if columns:
            source = {"fileObject": {"@id": f["path"]}}
            record_sets.append(
                _record_set(
                    _record_set_id(f["path"]),
                    [
                        (column, dtype, {**source, "extract": {"column": column}})
                        for column, dtype in columns.items()
                    ],
                )
            )
    license_urls = [f"https://spdx.org/licenses/{name}.html" for name in licenses]
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": repository.replace("/", "-"),
        "description": f"{repository}, version {version}",
        "conformsTo": CONFORMS_TO,
        "url": f"{base_url}/datasets/{repository}",
        "version": f"{version}.0.0",
        "license": license_urls[0] if len(license_urls) == 1 else license_urls or None,
        "distribution": distribution,
        "recordSet": record_sets,
    }
    doc.update(declared)
    return {k: v for k, v in doc.items() if v is not None}


def validate(doc: Mapping[str, Any]) -> None:
    """InvalidInput with mlcroissant's findings when the document does not validate."""
    try:
        import mlcroissant as mlc
    except ImportError:
        raise InvalidInput(
            "this facility cannot validate Croissant descriptions: its operator must install "
            "commonlab[data]"
        ) from None
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        mlc.Dataset(jsonld=json.loads(json.dumps(doc)))
    except mlc.ValidationError as exc:
        raise InvalidInput(f"the Croissant description does not validate: {exc}") from None
    except Exception as exc:
        raise InvalidInput(f"the Croissant description does not validate: {exc}") from None
