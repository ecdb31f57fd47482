"""Trace-driven simulation of the facility and its scheduling policies: workloads from real
traces, an event-driven gang scheduler, the policies it compares and the share controller."""

from commonlab.simulator.controller import ControllerSettings, next_weights

__all__ = ["ControllerSettings", "next_weights"]
