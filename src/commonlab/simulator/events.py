"""The record entries the simulator writes, and what each may say in clear."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "SimulatorEvent"]


class SimulatorEvent(StrEnum):
    WhatIfAttached = "simulator:whatif:attached"


FIELDS = declare(
    SimulatorEvent,
    {
        SimulatorEvent.WhatIfAttached: Fields(
            "whatif",
            "sha256",
            "policy",
            "jobs",
            "source",
            "in_force",
            "proposed",
            about="a simulation attached to a motion: the report's hash, its headline figures and "
            "which workload it replayed (the facility's own jobs or a published trace)",
        ),
    },
)
