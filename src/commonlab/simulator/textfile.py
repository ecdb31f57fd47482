"""Reading the text files an operator hands the simulator (traces, node lists, fleet and
regulation documents) defensively: line by line with a bound on each line, UTF-8 only (an
Excel BOM is accepted), and every refusal one line naming the file, the line and the field."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from commonlab.errors import InvalidInput

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_LINE_BYTES",
    "Progress",
    "Table",
    "read_document_text",
]

# A trace line is a few hundred bytes at most; 64 KiB is far beyond any real one, and a file
# that is one 1 GB line is refused after reading this much of it.
MAX_LINE_BYTES = 64 * 1024
# A fleet or regulation document is a few kilobytes; it is parsed whole, so it is bounded.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
# Longest field text quoted back in a message (a hostile field may be 64 KiB long).
_SHOWN = 40

# Called with (bytes read, total bytes) about every 1% of the file.
Progress = Callable[[int, int], None]


def shown(text: str) -> str:
    """A field's text for a message: quoted, and cut short when long."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


class Table:
    """A delimited text file with a header line, read one line at a time: rows come as
    (line number, fields), the header being line 1. Nothing before the current line is
    kept, so memory does not grow with the file. Use as a context manager."""

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        rows_are: str,
        delimiter: str,
        required: tuple[str, ...],
        progress: Progress | None = None,
    ) -> None:
        self.path = path
        self.what = what
        self.rows_are = rows_are
        self.delimiter = delimiter
        self.line = 0
        self._progress = progress
        self._read = 0
        self._next_report = 0
        self._handle = _open(path, what)
        try:
            self._total = os.fstat(self._handle.fileno()).st_size
            self._step = max(1, self._total // 100)
            self._reader = csv.reader(self._lines(), delimiter=delimiter)
            self.header = [name.strip() for name in self._first_row(required)]
        except BaseException:
            self._handle.close()
            raise
        self.index = {name: i for i, name in enumerate(self.header)}
        missing = [c for c in required if c not in self.index]
        if missing:
            self.close()
            raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}")
        self._needed = max((self.index[c] for c in required), default=0) + 1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def error(self, message: str) -> InvalidInput:
        """An error about the line read last."""
        return InvalidInput(f"{self.path} line {self.line}: {message}")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        width = len(self.header)
        rows = 0
        while (fields := self._next()) is not None:
            if not fields or fields == [""]:
                continue  # a blank line, often the last one
            if len(fields) > width or len(fields) < self._needed:
                raise self.error(f"{len(fields)} fields where the header has {width}")
            if len(fields) < width:
                fields += [""] * (width - len(fields))
            rows += 1
            yield self.line, fields
        if self._progress is not None:
            self._progress(self._total, self._total)
        if not rows:
            raise InvalidInput(f"{self.path}: a header line and no {self.rows_are}")

    def _first_row(self, required: tuple[str, ...]) -> list[str]:
        header = self._next()
        if header is None:
            raise InvalidInput(
                f"{self.path}: empty file; expected a header line naming {', '.join(required)}"
            )
        return header

    def _raw_lines(self) -> Iterator[bytes]:
        """The file's lines as bytes, each at most MAX_LINE_BYTES + 1 long. Lines end in LF
        (or CR LF); a file whose first line ends in a CR alone (classic Mac OS, and Excel
        for Mac's "CSV (Macintosh)") is split at its CRs, each line given an LF."""
        first = self._handle.readline(MAX_LINE_BYTES + 1)
        cr = first.find(b"\r")
        if not first.endswith(b"\n") and 0 <= cr < len(first) - 1:
            self._handle.seek(0)
            yield from _cr_lines(self._handle)
            return
        raw = first
        while raw:
            yield raw
            raw = self._handle.readline(MAX_LINE_BYTES + 1)

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise self.error(f"not a well-formed {self.what} line ({exc})") from None

    def _lines(self) -> Iterator[str]:
        """Decoded lines, each checked before it is decoded: bounded, no NUL, UTF-8."""
        for raw in self._raw_lines():
            self.line += 1
            start = self._read
            self._read += len(raw)
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise self.error(
                    f"longer than {MAX_LINE_BYTES // 1024} KiB (stopped reading at byte "
                    f"{self._read:,}); a {self.what} line is a few hundred bytes"
                )
            if self.line == 1 and raw.startswith(UTF8_BOM):
                raw, start = raw[len(UTF8_BOM) :], start + len(UTF8_BOM)
            try:
                yield _decode(raw, start, self.what)
            except _BadBytes as exc:
                raise self.error(exc.message) from None
            if self._progress is not None and self._read >= self._next_report:
                self._progress(self._read, self._total)
                self._next_report = self._read + self._step


def read_document_text(path: Path, *, what: str) -> str:
    """The whole text of a small document (fleet, regulation), checked like a table's lines:
    bounded in size, no NUL, UTF-8 (a BOM is stripped)."""
    handle = _open(path, what)
    with handle:
        raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(
            f"{path}: larger than {MAX_DOCUMENT_BYTES:,} bytes; a {what} document is a few "
            "kilobytes"
        )
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    try:
        return _decode(raw, 0, what)
    except _BadBytes as exc:
        line = raw[: exc.offset].count(b"\n") + 1
        raise InvalidInput(f"{path} line {line}: {exc.message}") from None


def _cr_lines(handle: BinaryIO) -> Iterator[bytes]:
    """Lines ended by a CR alone, as LF-ended lines of at most MAX_LINE_BYTES + 1 bytes (a
    longer one is given cut there, without its end, as `readline` would)."""
    pending = b""
    while chunk := handle.read(MAX_LINE_BYTES):
        pending += chunk
        *complete, pending = pending.split(b"\r")
        for line in complete:
            yield line[: MAX_LINE_BYTES + 1] if len(line) > MAX_LINE_BYTES else line + b"\n"
        if len(pending) > MAX_LINE_BYTES:
            yield pending[: MAX_LINE_BYTES + 1]
            return
    if pending:
        yield pending


def _open(path: Path, what: str) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the {what} ({exc.strerror})") from None


class _BadBytes(Exception):
    def __init__(self, message: str, offset: int) -> None:
        self.message = message
        self.offset = offset


def _decode(raw: bytes, start: int, what: str) -> str:
    """`raw` as text; `start` is its offset in the file, for the message."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise _BadBytes(
            f"a NUL byte at byte offset {start + nul:,}: a binary file, not a {what} in text",
            nul,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadBytes(
            f"not UTF-8 (byte 0x{raw[exc.start]:02x} at byte offset {start + exc.start:,}, "
            "perhaps Latin-1 or Windows-1252); re-save the file as UTF-8",
            exc.start,
        ) from None
