"""docs/record.md, generated from the code: one table per event type (its fields, which are in
clear and which only committed, and what the audit derives from it), the envelope, and what
each schema version changed.

Every word comes from where it is enforced or used: the fields and their one-line `about`
from each domain's `events.py` (what `record.append` refuses to go beyond), what the audit
derives from the docstring of the Book method that reads the entry, and the versions from
`schema_history.py`. So the document cannot drift from the code; `tests/audit/
test_schema_docs.py` fails when the committed file is out of date. Regenerate it with

    python -m commonlab.audit.schema_docs > docs/record.md
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from types import ModuleType

from commonlab.audit.log import CURRENT_SCHEMA
from commonlab.audit.run import books
from commonlab.audit.schema_history import ENVELOPE_SINCE, PAST_SCHEMAS, PastFields
from commonlab.record.fields import Fields, declared_events

__all__ = [
    "ENVELOPE",
    "REGENERATE",
    "domain_events",
    "event_modules",
    "problems",
    "readers",
    "render",
    "schema_changes",
]

REGENERATE = "python -m commonlab.audit.schema_docs > docs/record.md"
NOT_REPLAYED = "not replayed: no public figure depends on it"
# The package that holds every domain (src/commonlab), found without importing it.
_PACKAGE = Path(__file__).resolve().parents[1]
# The order a reader meets the domains in (the facility's, bottom up); a domain not listed
# here comes after them, by name, so a new one is documented without an edit.
_DOMAIN_ORDER = (
    "identity",
    "governance",
    "allocation",
    "artifacts",
    "compute",
    "workloads",
    "record",
    "simulator",
)

# The envelope every entry has, whatever its type (written by record.append).
ENVELOPE: Mapping[str, str] = {
    "type": "the event type, `<domain>:<thing>:<what happened>`: the tables below",
    "time": "when it was written, RFC 3339 in UTC with microseconds",
    "actor": "who acted: `id`, a pseudonym; `name` and `role` too when they acted in a public "
    "role (delegate, safety officer, operator)",
    "subject": "what it is about, `<kind>/<id>`, e.g. `motion/3`, `member/IT`",
    "data": "the event type's fields: in clear, or a committed field as "
    '`{"commitment": "sha256:…"}`',
    "policy_set": "the SHA-256 of the policy set in force: the rules the action was decided under",
    "schema": "the version of the entry schemas that wrote it (absent: version 1)",
}


def event_modules() -> list[ModuleType]:
    """Every domain's `events.py`, imported (each declares its event types as it loads)."""
    names = sorted(path.parent.name for path in _PACKAGE.glob("*/events.py"))
    return [importlib.import_module(f"commonlab.{name}.events") for name in names]


def domain_events() -> dict[str, Fields]:
    """Every event type the domains' `events.py` name, with its declared fields (only
    theirs: a test's own event types, declared in the same process, are no part of the
    record's documentation)."""
    declared = declared_events()
    return {
        member.value: declared[member.value]
        for module in event_modules()
        for enum in _enums_of(module)
        for member in enum
        if member.value in declared
    }


def readers() -> dict[str, list[tuple[str, str]]]:
    """For each event type a Book replays: (the Book's name, what it derives: the reading
    method's docstring), in the order the audit runs the Books."""
    found: dict[str, list[tuple[str, str]]] = {}
    for book in books():
        for entry_type, method in type(book).readers.items():
            found.setdefault(entry_type, []).append((book.name, _one_paragraph(method)))
    return found


def problems() -> list[str]:
    """What would make docs/record.md wrong, one line each: an event type in a domain's
    enum that no `Fields` declares, a type a Book reads that nobody declares (a reader that
    can never fire), a reader with no docstring to say what it derives."""
    modules = event_modules()
    declared = declared_events()
    found = [
        f"{module.__name__}.{enum.__name__}.{member.name} ({member.value!r}) is not declared: "
        "give it Fields(...) in record.fields.declare"
        for module in modules
        for enum in _enums_of(module)
        for member in enum
        if member.value not in declared
    ]
    documented = domain_events()
    for book in books():
        for entry_type, method in type(book).readers.items():
            where = f"{type(book).__name__}.{method.__name__}"
            if entry_type not in documented:
                found.append(f"{where} reads {entry_type!r}, which no events.py declares")
            if not _one_paragraph(method):
                found.append(f"{where} has no docstring saying what the audit derives")
    return found


def schema_changes(version: int) -> list[str]:
    """What `version` changed from the one before, one line each, read from the declarations
    (`schema_history.PAST_SCHEMAS`, and the domains' own for the current version)."""
    if version == 1:
        return ["the first version: entries carry no `schema` in their envelope"]
    before, after = _schema(version - 1), _schema(version)
    lines = [f"the envelope gains `{name}`" for name, v in ENVELOPE_SINCE.items() if v == version]
    for entry_type in sorted(before.keys() | after.keys()):
        old, new = before.get(entry_type), after.get(entry_type)
        if old is None:
            lines.append(f"`{entry_type}` is a new event type")
            continue
        if new is None:
            lines.append(f"`{entry_type}` is no longer written (older entries still read)")
            continue
        for name in sorted(new.public - old.public - old.private):
            lines.append(f"`{entry_type}` gains `{name}`, in clear")
        for name in sorted(new.private - old.public - old.private):
            lines.append(f"`{entry_type}` gains `{name}`, committed")
        for name in sorted((old.public | old.private) - (new.public | new.private)):
            lines.append(f"`{entry_type}` no longer has `{name}`")
        for name in sorted(new.public & old.private):
            lines.append(f"`{entry_type}`: `{name}` is now in clear (it was committed)")
        for name in sorted(new.private & old.public):
            lines.append(f"`{entry_type}`: `{name}` is now committed (it was in clear)")
    return lines


def render() -> str:
    """docs/record.md, whole."""
    declared = domain_events()
    read_by = readers()
    out = [
        "# The record's entries",
        "",
        f"<!-- Generated from the code: do not edit. Regenerate with `{REGENERATE}`. -->",
        "",
        "Every change the facility makes is an entry in its public, append-only log. This is "
        "every kind of entry: what each records, which of its fields anyone can read (in "
        "clear) and which the record holds only as a salted SHA-256 commitment that its "
        "holder can open to an auditor, and what `commonlab audit` re-derives from it. "
        "`record.append` refuses a field in clear that its event type does not declare "
        "public, so these tables are also the limit of what the record can say.",
        "",
        "## The envelope",
        "",
        "Every entry is one canonical JSON object (sorted keys, no spaces) with these fields; "
        "its SHA-256, prefixed by a zero byte, is its leaf in the Merkle tree (RFC 9162).",
        "",
        "| field | what it holds | since schema |",
        "|---|---|---|",
        *(
            f"| `{name}` | {_cell(what)} | {ENVELOPE_SINCE.get(name, 1)} |"
            for name, what in ENVELOPE.items()
        ),
        "",
        "## Schema versions",
        "",
        f"The current version is {CURRENT_SCHEMA}. The audit reads every version: a field "
        "an entry's version did not have is absent from it, and the audit says how it read "
        "such an entry (a note in its report).",
        "",
    ]
    for version in range(1, CURRENT_SCHEMA + 1):
        out += [f"### Version {version}", ""]
        out += [f"- {line}" for line in schema_changes(version) or ["nothing beyond the envelope"]]
        out.append("")
    out += ["## Event types", ""]
    for domain, types in _by_domain(declared):
        out += [f"### {domain}", ""]
        for entry_type in types:
            out += _event_table(entry_type, declared[entry_type], read_by.get(entry_type, []))
    return "\n".join(out).rstrip("\n") + "\n"


def _event_table(entry_type: str, fields: Fields, read_by: list[tuple[str, str]]) -> list[str]:
    since = _field_since(entry_type)
    lines = [f"#### `{entry_type}`", "", _cell(fields.about) or "—", ""]
    if fields.known:
        lines += ["| field | in clear or committed | since schema |", "|---|---|---|"]
        for name in sorted(fields.known):
            shown = "in clear" if name in fields.public else "committed"
            lines.append(f"| `{name}` | {shown} | {since(name)} |")
    else:
        lines.append("No data fields: the envelope says it all.")
    lines.append("")
    if not read_by:
        lines.append(f"What the audit derives from it: {NOT_REPLAYED}.")
    for book, derives in read_by:
        lines.append(f"What the audit derives from it ({book}): {_cell(derives)}")
    lines.append("")
    return lines


def _field_since(entry_type: str):
    """The schema version a field of `entry_type` first appeared in."""

    def since(name: str) -> int:
        for version in sorted(PAST_SCHEMAS):
            past = PAST_SCHEMAS[version].get(entry_type)
            if past is not None and name in past.public | past.private:
                return version
        return CURRENT_SCHEMA

    return since


def _schema(version: int) -> Mapping[str, PastFields]:
    if version in PAST_SCHEMAS:
        return PAST_SCHEMAS[version]
    if version != CURRENT_SCHEMA:
        raise ValueError(f"schema version {version} is neither past nor current")
    return {t: PastFields(f.public, f.private) for t, f in domain_events().items()}


def _by_domain(declared: Iterable[str]) -> list[tuple[str, list[str]]]:
    domains: dict[str, list[str]] = {}
    for entry_type in sorted(declared):
        domains.setdefault(entry_type.partition(":")[0], []).append(entry_type)

    def rank(domain: str) -> tuple[int, str]:
        known = domain in _DOMAIN_ORDER
        return (_DOMAIN_ORDER.index(domain) if known else len(_DOMAIN_ORDER), domain)

    return [(domain, domains[domain]) for domain in sorted(domains, key=rank)]


def _one_paragraph(method: object) -> str:
    """A reader's docstring as one line (the first paragraph: what it derives)."""
    text = inspect.getdoc(method) or ""
    return " ".join(text.split("\n\n")[0].split())


def _cell(text: str) -> str:
    # A '|' would end a Markdown table cell; nothing else in prose needs escaping.
    return " ".join(text.split()).replace("|", "\\|")


def _enums_of(module: ModuleType) -> list[type[StrEnum]]:
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, StrEnum)
        and value.__module__ == module.__name__
    ]


if __name__ == "__main__":
    sys.stdout.write(render())
