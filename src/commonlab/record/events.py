"""The record entries the record domain itself writes, and what each may say in clear."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "RecordEvent"]


class RecordEvent(StrEnum):
    WitnessRegistered = "record:witness:registered"
    WitnessRetired = "record:witness:retired"
    CommitmentOpened = "record:commitment:opened"
    LogForked = "record:log:forked"


FIELDS = declare(
    RecordEvent,
    {
        RecordEvent.WitnessRegistered: Fields(
            "verifier_key",
            "motion",
            about="a witness whose cosignatures the facility accepts, registered by a motion",
        ),
        RecordEvent.WitnessRetired: Fields(
            "motion", about="a witness retired by a motion: its cosignatures no longer count"
        ),
        # Only which field was opened: the value goes to the auditor who asked, not the record.
        RecordEvent.CommitmentOpened: Fields(
            "field", about="a committed field opened to an auditor: which field, not its value"
        ),
        # Written when an operator forces a start on a log that contradicts the checkpoint a
        # witness cosigned (a restored older backup): the fork is public, never silent.
        RecordEvent.LogForked: Fields(
            "reason",
            "witnessed_size",
            "witnessed_root",
            "witnesses",
            "restored_size",
            "restored_root",
            about="the operator forced a start on a log shorter than, or different from, the "
            "latest checkpoint a witness cosigned: a fork of the log",
        ),
    },
)
