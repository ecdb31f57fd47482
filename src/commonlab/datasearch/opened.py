"""Indexes as the server holds them open: an index version's stored files, read in place.

An index is a dataset version (linked `indexes` to what it indexes) whose files are the
exact index (`manifest.json`, the shards), its tokenizer, `records.jsonl` (what each index
record number is: file, record, content digest, own source and licence) and `about.json`.
The store keeps files under their digests, so an index is opened through a folder of
symbolic links named as the index expects; every file is memory-mapped, and a few opened
indexes are kept (their versions never change, so a cached one is never stale)."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commonlab.errors import CommonlabError, InvalidInput

if TYPE_CHECKING:
    from commonlab.datasearch.exact import ExactIndex

__all__ = [
    "ABOUT",
    "INDEX_FORMAT",
    "MAX_QUERY_TOKENS",
    "RECORDS",
    "TOKENIZER",
    "IndexedRecord",
    "OpenedIndex",
    "ServerLacksSearch",
    "is_index",
    "open_index",
]

INDEX_FORMAT = "commonlab-datasearch-index"
ABOUT = "about.json"
RECORDS = "records.jsonl"
TOKENIZER = "tokenizer.json"
# The longest query, in tokens (exact.MAX_QUERY_TOKENS, which a test holds this to: not
# imported, so a core install without numpy serves the routes that say what is missing).
MAX_QUERY_TOKENS = 4096
# Indexes kept open per process: each maps its files, and the page cache holds what is hot.
KEEP_OPEN = 8


class ServerLacksSearch(CommonlabError):
    """The server was installed without what search needs (the `ml` extra's tokenizers)."""

    status = 503
    slug = "search-unavailable"
    title = "Search unavailable"


@dataclass(frozen=True)
class IndexedRecord:
    """What index record `number` is: the dataset's file and record (as the records API
    numbers them), its content digest, and its own source and licence (None: the version's
    declaration applies)."""

    number: int
    file: str
    index: int
    sha256: str
    source: str | None
    license: str | None
    # The digests of each text member, when the record has several (`content.record_digests`):
    # a passage hashed alone matches the member it is, not only the whole record.
    member_sha256: tuple[str, ...] = ()

    @property
    def digests(self) -> tuple[str, ...]:
        return (self.sha256, *self.member_sha256)


@dataclass
class OpenedIndex:
    key: str
    folder: Path
    exact: ExactIndex
    tokenizer: Any  # tokenizers.Tokenizer
    about: dict[str, Any]
    _records: list[tuple[str, int, str, str | None, str | None, tuple[str, ...]]]
    _by_digest: dict[str, list[int]] | None = field(default=None)
    _semantic: Any = field(default=None)

    def record(self, number: int) -> IndexedRecord:
        return IndexedRecord(number, *self._records[number])

    def records_with_digest(self, sha256: str) -> list[IndexedRecord]:
        """The records whose text, or one of whose text members, has this digest."""
        if self._by_digest is None:
            by_digest: dict[str, list[int]] = {}
            for number in range(len(self._records)):
                for digest in self.record(number).digests:
                    by_digest.setdefault(digest, []).append(number)
            self._by_digest = by_digest
        return [self.record(n) for n in self._by_digest.get(sha256, [])]

    def records_of_file(self, path: str) -> list[IndexedRecord]:
        return [self.record(n) for n, row in enumerate(self._records) if row[0] == path]

    def __len__(self) -> int:
        return len(self._records)

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False) if ids else ""

    @property
    def has_semantic(self) -> bool:
        return (self.folder / "semantic.json").exists()

    def semantic(self) -> Any:
        """The index's semantic index (`semantic.SemanticIndex`), opened on first use."""
        if self._semantic is None:
            try:
                from commonlab.datasearch.semantic import SemanticIndex
            except ImportError as exc:
                raise ServerLacksSearch(
                    f"this server cannot search by meaning: it was installed without "
                    f"{exc.name} (pip install 'commonlab[ml,sim,search]')"
                ) from None
            self._semantic = SemanticIndex(self.folder)
        return self._semantic

    def text_of(self, number: int, *, at_most: int = 400) -> str:
        """The start of index record `number`'s text, decoded from its tokens."""
        return self.decode(list(self.exact.record(number)[:at_most]))

    def close(self) -> None:
        self.exact.close()
        if self._semantic is not None:
            self._semantic.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def is_index(paths: Mapping[str, Any]) -> bool:
    """Whether a version's files are an index's (what `open_index` needs is there)."""
    return all(name in paths for name in ("manifest.json", ABOUT, RECORDS, TOKENIZER))


_open: OrderedDict[str, OpenedIndex] = OrderedDict()
_lock = threading.Lock()


def open_index(key: str, files: Mapping[str, Path]) -> OpenedIndex:
    """The index whose stored files are `files` (path in the version → stored object), opened
    once per process and kept among the last KEEP_OPEN used; `key` names it (the version's
    statement digest, which changes with any file)."""
    with _lock:
        if key in _open:
            _open.move_to_end(key)
            return _open[key]
    opened = _load(key, files)
    with _lock:
        if key in _open:  # another request opened it meanwhile: keep one
            opened.close()
            return _open[key]
        _open[key] = opened
        while len(_open) > KEEP_OPEN:
            _, oldest = _open.popitem(last=False)
            oldest.close()
    return opened


def _load(key: str, files: Mapping[str, Path]) -> OpenedIndex:
    if not is_index(files):
        raise InvalidInput("that version is not a search index (it has no manifest.json)")
    try:
        from tokenizers import Tokenizer

        from commonlab.datasearch.exact import ExactIndex
    except ImportError as exc:
        raise ServerLacksSearch(
            f"this server cannot search: it was installed without {exc.name} "
            "(pip install 'commonlab[ml,sim,search]')"
        ) from None
    folder = Path(tempfile.mkdtemp(prefix="commonlab-index-"))
    for path, stored in files.items():
        if "/" in path:
            continue  # the index's own files sit at the version's top
        (folder / path).symlink_to(stored)
    about = json.loads((folder / ABOUT).read_text())
    if about.get("format") != INDEX_FORMAT:
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidInput(f"that version is not a search index ({ABOUT} names no index format)")
    records: list[tuple[str, int, str, str | None, str | None, tuple[str, ...]]] = []
    with (folder / RECORDS).open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            records.append((
                row["file"], int(row["index"]), row["sha256"], row["source"], row["license"],
                tuple(row.get("member_sha256") or ()),
            ))  # fmt: skip
    return OpenedIndex(
        key=key,
        folder=folder,
        exact=ExactIndex(folder),
        tokenizer=Tokenizer.from_file(str(folder / TOKENIZER)),
        about=about,
        _records=records,
    )
