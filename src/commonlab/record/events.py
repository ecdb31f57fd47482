"""The record entries the record domain itself writes, and what each may say in clear."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "RecordEvent"]


class RecordEvent(StrEnum):
    WitnessRegistered = "record:witness:registered"
    WitnessRetired = "record:witness:retired"
    CommitmentOpened = "record:commitment:opened"


FIELDS = declare(
    RecordEvent,
    {
        RecordEvent.WitnessRegistered: Fields("verifier_key", "motion"),
        RecordEvent.WitnessRetired: Fields("motion"),
        # Only which field was opened: the value goes to the auditor who asked, not the record.
        RecordEvent.CommitmentOpened: Fields("field"),
    },
)
