"""Trace-driven simulation of the facility and its scheduling policies: workloads from real
traces, an event-driven gang scheduler (engine/), the policies it compares, among them
commonlab's, steered by compute's share controller."""
