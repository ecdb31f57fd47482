"""The record entries the simulator writes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SimulatorEvent"]


class SimulatorEvent(StrEnum):
    WhatIfAttached = "simulator:whatif:attached"
