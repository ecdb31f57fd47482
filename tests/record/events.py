"""The event types the record's own tests write, declared like any domain's (record/fields.py):
`record.append` refuses an undeclared one."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["SampleEvent"]


class SampleEvent(StrEnum):
    Entry = "test:entry"
    Alpha = "test:alpha"
    Beta = "test:beta"
    Doomed = "test:doomed"
    Private = "test:private"
    Kept = "test:kept"
    Undone = "test:undone"
    Crash = "test:crash"


_NUMBERED = Fields("i")

FIELDS = declare(
    SampleEvent,
    {
        SampleEvent.Entry: _NUMBERED,
        SampleEvent.Alpha: _NUMBERED,
        SampleEvent.Beta: _NUMBERED,
        SampleEvent.Doomed: Fields(),
        SampleEvent.Private: Fields("a", "b", private=("secret",)),
        SampleEvent.Kept: Fields(),
        SampleEvent.Undone: Fields(),
        SampleEvent.Crash: Fields("n"),
    },
)
