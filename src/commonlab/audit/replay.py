"""Replaying the record: each domain's `Book` folds the entries it understands into the public
state they imply, in log order.

A Book says which entry types it reads with `@reads("type", ...)` on a method; the method's
docstring says what the audit derives from that entry, and `docs/record.md` prints it beside
the entry's fields, so the documentation of the record cannot drift from the code that reads
it. Entries no Book reads are counted, never silently lost (`Replay.unread`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published

__all__ = ["Book", "Replay", "reads"]

Handler = Callable[[Any, Entry], None]


def reads(*types: str) -> Callable[[Handler], Handler]:
    """Mark a Book method as the reader of these entry types."""

    def mark(method: Handler) -> Handler:
        method.__reads__ = types  # type: ignore[attr-defined]
        return method

    return mark


class Book(ABC):
    """One domain's replayed state. Subclasses mark readers with @reads and implement
    `compare`, which checks the state against what the facility publishes."""

    name: ClassVar[str] = "book"
    readers: ClassVar[dict[str, Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.readers = {
            entry_type: method
            for method in vars(cls).values()
            for entry_type in getattr(method, "__reads__", ())
        }

    def apply(self, entry: Entry) -> bool:
        reader = self.readers.get(entry.type)
        if reader is None:
            return False
        reader(self, entry)
        return True

    @abstractmethod
    def compare(self, published: Published, findings: Findings) -> None:
        """Check the replayed state against the facility's published figures."""


class Replay:
    """All the Books, fed the log once, in order."""

    def __init__(self, books: Iterable[Book]) -> None:
        self.books = list(books)
        self.replayed = 0
        self.unread: Counter[str] = Counter()
        self.malformed: list[tuple[Entry, str]] = []  # entries a Book could not read

    def feed(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            # Several Books may read one entry (a motion's effect is governance's and the
            # domain's it changes).
            read = [self._apply(book, entry) for book in self.books]
            if any(read):
                self.replayed += 1
            else:
                self.unread[entry.type] += 1

    def _apply(self, book: Book, entry: Entry) -> bool:
        """A signed entry that does not say what its type declares is the facility's doing,
        not the auditor's: a finding, never a crash that would hide the rest of the log."""
        try:
            return book.apply(entry)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            self.malformed.append((entry, f"{type(exc).__name__}: {exc}"))
            return True
