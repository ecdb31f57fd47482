"""The run table and its accounting: what a start, an end and a cut (core.Engine's, which
write the table) do to the pools' and tenants' counters, and the Outcome built from each
job's last run."""

from __future__ import annotations

import math

import pytest

from tests.simulator.engine.helpers import ONE_BOX, arrive, engine

POOLS = {"pools": ("pa", "pb"), "entitled": (0.5, 0.5), "tenant_pools": {"a": "pa", "b": "pb"}}
JOBS = [
    {"submit": 0, "runtime": 100, "size": 3, "tenant": "a"},
    {"submit": 0, "runtime": 10, "size": 1, "tenant": "b"},
]


def test_start_and_stop_move_the_pool_counters_and_the_tenants_usage() -> None:
    e = engine(ONE_BOX, JOBS, **POOLS)
    runs, state = e.runs, e.state
    arrive(e, 0, 1)
    assert state.pool_waiting == [1, 1] and state.pool_queued == [3, 1]
    e.start(0, 0)
    assert state.pool_running == [3, 0] and state.pool_waiting == [0, 1]
    assert runs.running[0] and runs.placed[0] == 0 and runs.completions == [(100, 0)]
    state.now = 40.0
    e.finish(0)
    assert not runs.running[0] and runs.end_time[0] == 40.0
    assert state.pool_running == [0, 0]
    state.now = 50.0
    assert state.tenant_usage() == [3 * 40.0, 0.0]  # tenants by first appearance: a, b


def test_a_cut_run_counts_what_it_lost_and_adds_the_jobs_next_run() -> None:
    e = engine(ONE_BOX, JOBS, **POOLS)
    runs, state = e.runs, e.state
    arrive(e, 0)
    e.start(0, 0)
    state.now = 30.0
    e.preempt(0)
    r = len(runs.origin) - 1
    assert r == 2 and runs.origin[r] == 0 and runs.last_run[0] == r
    assert (runs.size[r], runs.runtime[r], runs.pool[r]) == (3, 100, 0)
    assert runs.queued_at[r] == 30.0 and math.isnan(runs.start_time[r])
    assert runs.preemptions == 1 and runs.lost_accelerator_seconds == 90.0
    assert runs.preempted_seconds.tolist() == [30.0, 0.0]
    assert state.pool_waiting[0] == 1 and state.pool_queued[0] == 3  # waiting again


@pytest.mark.parametrize("cut", [False, True])
def test_the_outcome_shows_each_jobs_last_run(cut: bool) -> None:
    e = engine(ONE_BOX, JOBS, **POOLS)
    runs, state = e.runs, e.state
    arrive(e, 0)
    e.start(0, 0)
    j = 0
    if cut:
        state.now = 5.0
        e.preempt(0)
        j = len(runs.origin) - 1
        e.start(j, 0)
    state.now = 200.0
    e.finish(j)
    outcome = runs.outcome(events=7, backfilled=1)
    assert outcome.start.tolist()[0] == (5.0 if cut else 0.0)
    assert outcome.end.tolist()[0] == 200.0 and outcome.partition.tolist()[0] == 0
    assert (outcome.events, outcome.backfilled, outcome.preemptions) == (7, 1, int(cut))
    assert outcome.cut_job.tolist() == ([0] if cut else [])
    assert math.isnan(outcome.start.tolist()[1])  # never started
