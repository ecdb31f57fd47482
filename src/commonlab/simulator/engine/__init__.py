"""The simulator's discrete-event engine: gang scheduling of a workload on a fleet's
partitions and interconnect domains under a `Policy`. Its parts, each tested alone: the run
table and its accounting (runs), free accelerators (placement), the wait queues (queues),
the main pass, EASY backfill, reclaim by preemption, and the event loop (loop) that drives
them; `core` holds them together."""

from commonlab.simulator.engine.core import EngineSettings
from commonlab.simulator.engine.loop import simulate
from commonlab.simulator.engine.policy import Policy, State
from commonlab.simulator.engine.runs import Outcome

__all__ = ["EngineSettings", "Outcome", "Policy", "State", "simulate"]
