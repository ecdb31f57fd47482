"""The record entries the record domain itself writes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RecordEvent"]


class RecordEvent(StrEnum):
    WitnessRegistered = "record:witness:registered"
    WitnessRetired = "record:witness:retired"
    CommitmentOpened = "record:commitment:opened"
