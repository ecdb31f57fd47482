"""The record entries the datasearch domain writes, and what each may say in clear.

An opt-out is public as a commitment: who filed it and what it names (a passage, a digest,
a URL pattern) enter the record only as salted commitments, so the requester can prove the
request was theirs and nobody else learns it. What it matched is public where the public
may read it: the number of public records, the public dataset versions holding them, and
the released models trained on them before it was filed. Matches in contained data are a
commitment: a count in clear would let anyone learn, by filing opt-outs, whether a passage
is in data they may not read. An operator's decision on it is
recorded in clear, with its reason."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "DatasearchEvent"]


class DatasearchEvent(StrEnum):
    OptOutFiled = "datasearch:optout:filed"
    OptOutDecided = "datasearch:optout:decided"


FIELDS = declare(
    DatasearchEvent,
    {
        DatasearchEvent.OptOutFiled: Fields(
            "kind",
            "records",
            "datasets",
            "models_trained_before",
            private=("requester", "value", "contained_records"),
            about="a data owner's opt-out: its kind, how many public records it matched, the "
            "public dataset versions holding them and the released models trained on them "
            "before (matches in contained data only as a commitment)",
        ),
        DatasearchEvent.OptOutDecided: Fields(
            "decision",
            "reason",
            about="an operator upholds or rejects an opt-out (a rejected one is no longer "
            "honoured)",
        ),
    },
)
