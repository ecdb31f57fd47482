"""Every event type says which of its fields are public, and `record.append` holds to it:
an undeclared event type or a field in clear that is not declared public is refused before
anything is written (the record cannot be redacted)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from enum import StrEnum
from pathlib import Path

import pytest
from sqlalchemy import func, select

import commonlab
from commonlab import record
from commonlab.policy.principal import SYSTEM
from commonlab.record.fields import (
    Fields,
    UndeclaredEventError,
    UndeclaredFieldError,
    declare,
    declared_events,
)
from commonlab.record.models import Entry, PrivateOpening
from tests.helpers import sequence_now
from tests.record.events import SampleEvent

SRC = Path(commonlab.__file__).parent


def _domain_event_enums() -> list[type[StrEnum]]:
    """The Event enums of every domain: each `commonlab.<domain>.events` module's StrEnums."""
    enums = []
    for info in pkgutil.iter_modules(commonlab.__path__):
        if not info.ispkg or not (SRC / info.name / "events.py").exists():
            continue
        module = importlib.import_module(f"commonlab.{info.name}.events")
        enums += [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, StrEnum)
            and value is not StrEnum
            and value.__module__ == module.__name__
        ]
    return enums


def test_every_event_type_of_every_domain_is_declared():
    enums = _domain_event_enums()
    names = {e.__name__ for e in enums}
    assert {"AllocationEvent", "ArtifactsEvent", "ComputeEvent", "GovernanceEvent"} <= names
    assert {"IdentityEvent", "RecordEvent", "SimulatorEvent"} <= names
    declared = declared_events()
    undeclared = [str(e) for enum in enums for e in enum if str(e) not in declared]
    assert undeclared == []


def _appends() -> list[tuple[str, ast.Call]]:
    """Every `record.append(...)` call in the package, with where it is."""
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "record"
            ):
                calls.append((f"{path.relative_to(SRC)}:{node.lineno}", node))
    return calls


def _events_named(node: ast.expr, enums: dict[str, type[StrEnum]]) -> list[str]:
    """The event types an append's event argument names (`X.Y`, or either of a choice)."""
    if isinstance(node, ast.IfExp):
        return _events_named(node.body, enums) + _events_named(node.orelse, enums)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (enum := enums.get(node.value.id)) is not None
    ):
        return [str(enum[node.attr])]
    return []  # computed (e.g. job_event(state)): append checks it when it runs


def _literal_keys(node: ast.expr | None) -> list[str]:
    """The field names a data= or private= argument spells out (through ** and choices)."""
    if isinstance(node, ast.IfExp):
        return _literal_keys(node.body) + _literal_keys(node.orelse)
    if not isinstance(node, ast.Dict):
        return []
    keys = []
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            keys += _literal_keys(value)
        elif isinstance(key, ast.Constant):
            keys.append(key.value)
    return keys


def test_every_append_in_the_code_names_an_event_and_declared_fields():
    """What the code spells out is checked here, before any use case runs it: an event given
    as a string would dodge its enum, and a new field must be declared with its event."""
    enums = {e.__name__: e for e in _domain_event_enums()}
    declared = declared_events()
    wrong = []
    for where, call in _appends():
        if isinstance(call.args[1], ast.Constant):
            wrong.append(f"{where}: event given as a string")
        arguments = {k.arg: k.value for k in call.keywords}
        clear = _literal_keys(arguments.get("data"))
        committed = _literal_keys(arguments.get("private"))
        for event in _events_named(call.args[1], enums):
            fields = declared[event]
            wrong += [f"{where}: {event} {k!r} in clear" for k in clear if k not in fields.public]
            wrong += [
                f"{where}: {event} {k!r} undeclared"
                for k in committed
                if k not in fields.public | fields.private
            ]
    assert wrong == []


def test_a_declaration_must_cover_every_member_exactly():
    class Half(StrEnum):
        Done = "test:half:done"
        Forgotten = "test:half:forgotten"

    with pytest.raises(UndeclaredEventError, match="test:half:forgotten"):
        declare(Half, {Half.Done: Fields()})
    with pytest.raises(UndeclaredEventError, match="declare the fields"):
        declare(Half, {Half.Done: Fields(), Half.Forgotten: Fields(), SampleEvent.Kept: Fields()})
    with pytest.raises(ValueError, match="both public and private"):
        Fields("a", private=("a",))
    with pytest.raises(UndeclaredEventError, match="declared twice"):
        declare(SampleEvent, {e: Fields() for e in SampleEvent})


def _count(facility, table):
    with facility.db.session() as session:
        return session.scalar(select(func.count()).select_from(table))


@pytest.mark.parametrize(
    ("event", "data", "private", "refusal"),
    [
        # a field nobody declared, in clear
        (SampleEvent.Private, {"a": 1, "name": "secret-sauce-xyz"}, {}, UndeclaredFieldError),
        # a field declared private, in clear
        (SampleEvent.Private, {"secret": "the tenant's data"}, {}, UndeclaredFieldError),
        # a commitment to a field nobody declared
        (SampleEvent.Private, {}, {"other": "x"}, UndeclaredFieldError),
        # an event type nobody declared
        ("test:nobody-declared-me", {}, {}, UndeclaredEventError),
    ],
)
def test_append_refuses_what_the_event_does_not_declare_and_writes_nothing(
    facility, app, event, data, private, refusal
):
    before = (_count(facility, Entry), _count(facility, PrivateOpening))
    with (
        facility.db.session() as session,
        pytest.raises(refusal, match=r"declare|may not be in clear|not declared"),
        session.begin(),
    ):
        record.append(session, SampleEvent.Kept, actor=SYSTEM, subject="before")
        record.append(session, event, actor=SYSTEM, subject="x", data=data, private=private)
    sequence_now(app)
    assert (_count(facility, Entry), _count(facility, PrivateOpening)) == before


def test_a_field_declared_public_may_always_be_committed_instead(facility, app):
    with facility.db.session() as session, session.begin():
        record.append(
            session, SampleEvent.Private, actor=SYSTEM, subject="x", private={"a": 1, "secret": 2}
        )
    assert _count(facility, PrivateOpening) == 2
