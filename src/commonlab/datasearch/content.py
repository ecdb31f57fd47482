"""What a record's text is and what its content hash is: the one definition that the index
job, the exclude job, membership and opt-outs on the server, and `commonlab optout hash`
all use, so a digest computed anywhere matches a digest computed anywhere else.

A record's text is its text members (a row's string fields, a shard's `.txt`, `.caption`,
... members), in member order, without the fields that say where it came from or under
which licence, joined by a blank line. Its digest is the SHA-256 of that text, normalised
so that a person hashing her own copy of a passage gets the same digest as the facility:

- Unicode NFC (an "é" typed as one code point or as "e" and an accent is one text),
- line ends as "\\n" (a file saved on Windows is the same text),
- a byte-order mark and the whitespace around the whole text removed (a file's trailing
  newline, a field's stray space);

and nothing else: whitespace and case inside the text are part of it.

A record also matches by any one of its text members on its own (`record_digests`): a
novelist hashes her chapter, not the chapter joined to the title field beside it.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Collection
from pathlib import Path

from commonlab.artifacts.dataset_rows import LICENSE_KEYS, SOURCE_KEYS, Member, Record
from commonlab.errors import InvalidInput

__all__ = [
    "MAX_HASHED_FILE",
    "PROVENANCE_FIELDS",
    "SEPARATOR",
    "content_sha256",
    "normalise",
    "record_digests",
    "record_text",
    "text_members",
    "text_sha256_of_file",
]

SEPARATOR = "\n\n"
# A passage or a document, not a dataset: the largest file `text_sha256_of_file` reads.
MAX_HASHED_FILE = 256 << 20
# Where a record came from and under which licence: said about its text, not part of it.
PROVENANCE_FIELDS = frozenset(SOURCE_KEYS) | frozenset(LICENSE_KEYS)


def text_members(record: Record, text_columns: Collection[str] | None = None) -> list[Member]:
    """The record's members that hold text, in member order: those named in `text_columns`
    when given, else every text member but the source and licence fields. A member that is
    only whitespace, or whose text was not read (too large), holds none."""
    return [
        member
        for member in record.members
        if member.kind == "text"
        and member.text is not None
        and member.text.strip()
        and (
            member.name in text_columns
            if text_columns is not None
            else member.name not in PROVENANCE_FIELDS
        )
    ]


def record_text(record: Record, text_columns: Collection[str] | None = None) -> str:
    """The record's text members joined by a blank line; "" when it has none."""
    return SEPARATOR.join(member.text or "" for member in text_members(record, text_columns))


def normalise(text: str) -> str:
    """The text as it is hashed: NFC, "\\n" line ends, no BOM, no surrounding whitespace."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text).lstrip("\ufeff").strip()


def content_sha256(text: str) -> str:
    """The SHA-256 (hex) of the normalised text's UTF-8 bytes."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def record_digests(record: Record) -> tuple[str, ...]:
    """Every digest the record answers to: its whole text's first, then each of its text
    members' own when it has more than one. Empty for a record without text.

    Always over every text member (never an index's `text_columns`): an opt-out's hash must
    find the same records whichever job looks."""
    members = text_members(record)
    if not members:
        return ()
    whole = content_sha256(SEPARATOR.join(member.text or "" for member in members))
    if len(members) == 1:
        return (whole,)
    own = (content_sha256(member.text or "") for member in members)
    return tuple(dict.fromkeys((whole, *own)))


def text_sha256_of_file(path: Path) -> str:
    """The digest of a plain UTF-8 text file's content, normalised as a record's text is."""
    try:
        size = path.stat().st_size
        if size > MAX_HASHED_FILE:
            raise InvalidInput(
                f"{path} is {size} bytes; hash a passage or a document of at most "
                f"{MAX_HASHED_FILE >> 20} MiB"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{path} is not UTF-8 text: save it as UTF-8 plain text (.txt) and hash that"
        ) from None
    return content_sha256(text)
