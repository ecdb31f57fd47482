"""The loop skips a backfill pass when the last one started nothing and nothing changed
since (loop._unchanged): it must skip them, and must still run one after a tick that re-ranks
the queues or a reclaim pass that changes the caps, though neither starts or ends a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from commonlab.simulator.engine import EngineSettings, Policy, State, simulate
from commonlab.simulator.engine.backfill import Backfill
from commonlab.simulator.inputs import partitions
from commonlab.simulator.workload import bind_classes, build_workload
from tests.simulator.engine.helpers import ONE_BOX
from tests.simulator.helpers import trace


class Ranked(Policy):
    """One queue per job, ranked by `rank` (job order by default); `rerank`, when set, is
    the rank from the first tick on."""

    name = "ranked"
    tick = None

    def __init__(self, rerank: list[float] | None = None) -> None:
        self.rerank = rerank

    def bind(self, state: State) -> np.ndarray:
        n = len(state.workload)
        self.rank = [-float(j) for j in range(n)]
        return np.arange(n, dtype=np.int64)

    def priority(self, key: int, job: int) -> float:
        return self.rank[key]

    def on_tick(self, now: float) -> None:
        if self.rerank is not None:
            self.rank = list(self.rerank)


class CapLifted(Ranked):
    """Its one pool may hold 3 accelerators until the first reclaim pass at or after
    t=100 lifts the cap (a plan's change, with no tick)."""

    preempts = True

    def bind(self, state: State) -> np.ndarray:
        self.state = state
        self.caps = [3.0]
        return super().bind(state)

    def evictions(self, running, waiting) -> list[int]:
        if self.state.now >= 100:
            self.caps[0] = math.inf
        return []


def simulated(jobs, policy, settings=EngineSettings()):
    parts = partitions(ONE_BOX)
    workload, eligible = bind_classes(build_workload([trace(jobs)], pools=["p"]), parts)
    return simulate(workload, parts, eligible, policy, entitled=[1.0], settings=settings)


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times of the backfill passes that ran."""
    times: list[float] = []
    run = Backfill.run

    def counted(self: Backfill) -> None:
        times.append(self.engine.state.now)
        run(self)

    monkeypatch.setattr(Backfill, "run", counted)
    return times


def test_passes_that_cannot_start_anything_are_skipped(passes: list[float]) -> None:
    jobs = [
        {"submit": 0, "runtime": 1000, "size": 3},
        {"submit": 0, "runtime": 10, "size": 4},  # reserved for t=1000
        {"submit": 0, "runtime": 5000, "size": 1},  # would delay it: waits until 1010
    ]
    outcome = simulated(jobs, Ranked())
    assert outcome.start.tolist() == [0, 1000, 1010]
    # One pass at t=30 finds nothing to start; nothing changes until t=1000, so the 32
    # passes up to then are skipped; after the starts and ends at 1000 and 1010 none wait.
    assert passes == [30.0]


def test_a_tick_that_reranks_the_queues_lets_the_next_pass_run(passes: list[float]) -> None:
    jobs = [
        {"submit": 0, "runtime": 1000, "size": 3},
        {"submit": 0, "runtime": 10, "size": 4},  # reserved for t=1000
        {"submit": 0, "runtime": 5000, "size": 1},  # would delay it
        {"submit": 0, "runtime": 10, "size": 1},  # fits before it, beyond a 2-job window
    ]
    policy = Ranked(rerank=[0.0, -1.0, -3.0, -2.0])  # at the tick, job 3 passes job 2
    policy.tick = 100.0
    outcome = simulated(jobs, policy, EngineSettings(backfill_window=2))
    assert outcome.start.tolist()[3] == 120.0  # the first pass after the tick
    assert passes[:2] == [30.0, 120.0]


def test_a_cap_the_reclaim_pass_lifts_lets_the_next_pass_run(passes: list[float]) -> None:
    jobs = [
        {"submit": 0, "runtime": 1000, "size": 3},
        {"submit": 0, "runtime": 10, "size": 1},  # over the cap until t=120
    ]
    outcome = simulated(jobs, CapLifted())
    assert outcome.start.tolist() == [0, 120]
    assert passes == [30.0, 120.0]
