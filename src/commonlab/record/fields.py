"""What each kind of record entry may say in clear: every event type declares its fields.

The record cannot be redacted, so it fails closed. A domain declares, next to its Event enum,
which data fields of each event type are public (in clear) and which are private (only ever
a salted commitment); `record.append` refuses a field in clear that is not declared public,
any field not declared at all, and an event type that has no declaration. Committing a field
declared public is always allowed: more private is never a leak.

Only `data` is declared here: the envelope (type, time, actor, subject, and `policy_set`, the
SHA-256 of the policy set in force) is the same for every entry and written by `append`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "Fields",
    "UndeclaredEventError",
    "UndeclaredFieldError",
    "check",
    "declare",
    "declared",
    "declared_events",
]


class UndeclaredEventError(LookupError):
    """An event type nobody declared: a programming error, never the caller's input."""


class UndeclaredFieldError(ValueError):
    """A field the event type does not declare (or declares private) was given in clear."""


@dataclass(frozen=True, init=False)
class Fields:
    """One event type's data fields: `public` may appear in clear, `private` only committed."""

    public: frozenset[str]
    private: frozenset[str]
    known: frozenset[str]  # both: what may be committed
    about: str  # one line: what the entry records (docs/record.md prints it)

    def __init__(self, *public: str, private: Iterable[str] = (), about: str = "") -> None:
        object.__setattr__(self, "public", frozenset(public))
        object.__setattr__(self, "private", frozenset(private))
        object.__setattr__(self, "about", about)
        object.__setattr__(self, "known", self.public | self.private)
        if both := self.public & self.private:
            raise ValueError(f"fields declared both public and private: {sorted(both)}")


_DECLARED: dict[str, Fields] = {}


def declare(events: type[StrEnum], fields: Mapping[StrEnum, Fields]) -> Mapping[StrEnum, Fields]:
    """Register the fields of every member of `events` (called once, where the enum lives).

    Refuses, at import, an enum member left undeclared or a declaration for another enum's
    member, so a new event type cannot reach the record without saying what it shows.
    """
    missing = [str(e) for e in events if e not in fields]
    foreign = [str(e) for e in fields if not isinstance(e, events)]
    if missing or foreign:
        raise UndeclaredEventError(
            f"{events.__name__}: declare the fields of {missing or foreign} "
            "(each member exactly once)"
        )
    for event, declared_fields in fields.items():
        known = _DECLARED.setdefault(str(event), declared_fields)
        if known != declared_fields:
            raise UndeclaredEventError(f"{event} is declared twice, differently")
    return MappingProxyType(dict(fields))


def declared(event: StrEnum | str) -> Fields:
    """The declaration of `event`; an undeclared event type is an error, never a pass."""
    try:
        return _DECLARED[event]  # a StrEnum member hashes and compares as its value
    except KeyError:
        raise UndeclaredEventError(
            f"record entries of type {str(event)!r} are not declared: declare their fields "
            "next to the domain's Event enum with record.fields.declare"
        ) from None


def declared_events() -> Mapping[str, Fields]:
    """Every declared event type (what the modules imported so far declared)."""
    return MappingProxyType(_DECLARED)


def check(event: StrEnum | str, *, public: Iterable[str], private: Iterable[str]) -> None:
    """Refuse a field in clear that is not declared public, or a field not declared at all."""
    fields = declared(event)
    # Every entry passes here: the usual case (all declared) is two subset tests, no new sets.
    if fields.public.issuperset(public) and fields.known.issuperset(private):
        return
    if in_clear := sorted(set(public) - fields.public):
        if set(in_clear) & fields.private:
            hint = "it is declared private: pass it as private="
        else:
            hint = "declare it public only if anyone may read it, else pass it as private="
        raise UndeclaredFieldError(f"{event}: field(s) {in_clear} may not be in clear ({hint})")
    if unknown := sorted(set(private) - fields.public - fields.private):
        raise UndeclaredFieldError(f"{event}: field(s) {unknown} are not declared for it")
