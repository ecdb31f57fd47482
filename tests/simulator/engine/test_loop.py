"""The event loop alone, with a policy that only records what it is asked: ticks every
`tick` seconds while jobs wait, backfill passes every interval, progress reports, and a
run that ends when the last job does."""

from __future__ import annotations

import numpy as np
import pytest

from commonlab.simulator.engine import EngineSettings, Policy, State, simulate
from commonlab.simulator.inputs import partitions
from commonlab.simulator.workload import bind_classes, build_workload
from tests.simulator.engine.helpers import ONE_BOX
from tests.simulator.helpers import trace


class Recording(Policy):
    """FIFO, recording every tick."""

    name = "recording"
    tick = 100.0

    def bind(self, state: State) -> np.ndarray:
        self.state, self.ticks = state, []
        return np.zeros(len(state.workload), dtype=np.int64)

    def priority(self, key: int, job: int) -> float:
        return -self.state.queued_at[job]

    def on_tick(self, now: float) -> None:
        self.ticks.append(now)


def simulated(jobs, policy, settings=EngineSettings(), progress=None):
    parts = partitions(ONE_BOX)
    workload, eligible = bind_classes(build_workload([trace(jobs)], pools=["p"]), parts)
    return simulate(
        workload, parts, eligible, policy, entitled=[1.0], settings=settings, progress=progress
    )


def test_ticks_come_every_tick_while_jobs_wait_and_stop_when_none_do() -> None:
    # The second job waits 0-450 (the first holds all 4); then nothing waits until t=1000,
    # when the overdue tick comes with the arrival.
    jobs = [
        {"submit": 0, "runtime": 450, "size": 4},
        {"submit": 0, "runtime": 10, "size": 4},
        {"submit": 1000, "runtime": 10, "size": 4},
    ]
    policy = Recording()
    outcome = simulated(jobs, policy)
    assert policy.ticks == [100, 200, 300, 400, 1000]
    assert outcome.start.tolist() == [0, 450, 1000]
    assert outcome.events == 6  # three arrivals, three ends


@pytest.mark.parametrize(("interval", "start"), [(30.0, 30.0), (45.0, 45.0)])
def test_backfill_runs_at_its_interval(interval: float, start: float) -> None:
    jobs = [
        {"submit": 0, "runtime": 100, "size": 3},
        {"submit": 0, "runtime": 10, "size": 4},  # blocked: reserved for t=100
        {"submit": 1, "runtime": 20, "size": 1},  # backfilled at the first pass
    ]
    policy = Recording()
    policy.tick = None
    outcome = simulated(jobs, policy, EngineSettings(backfill_interval=interval))
    assert outcome.start.tolist() == [0, 100, start]
    assert outcome.backfilled == 1


def test_progress_is_reported_in_jobs_done() -> None:
    jobs = [{"submit": i, "runtime": 1, "size": 1} for i in range(10)]
    seen: list[int] = []
    simulated(jobs, Recording(), progress=seen.append)
    assert seen[-1] == 10 and seen == sorted(seen)
