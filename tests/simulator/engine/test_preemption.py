"""Reclaim by preemption alone: which runs are chosen as victims (newest first, only of
pools that may be preempted, only as many as needed), and a reclaim pass."""

from __future__ import annotations

import pytest

from commonlab.simulator.engine.preemption import Preemption
from commonlab.simulator.policies import make_policy
from tests.simulator.engine.helpers import ONE_BOX, TWO_DOMAINS, arrive, engine

POOLS = {"pools": ("pa", "pb"), "entitled": (0.5, 0.5), "tenant_pools": {"a": "pa", "b": "pb"}}


def borrowed(spec, a_jobs: int, b_job: dict):
    """drf: pool a runs `a_jobs` one-accelerator jobs started at t=0, 1, 2...; b waits."""
    jobs = [{"submit": 0, "runtime": 100, "size": 1, "tenant": "a"} for _ in range(a_jobs)]
    jobs.append({"submit": 0, "runtime": 50, "tenant": "b", **b_job})
    e = engine(spec, jobs, "drf", **POOLS)
    preemption = Preemption(e)
    for j in range(a_jobs):
        e.state.now = float(j)
        arrive(e, j)
        e.start(j, 0)
    arrive(e, a_jobs)
    e.state.now = 30.0
    return e, preemption


@pytest.mark.parametrize(
    ("spec", "a_jobs", "b_job", "victims"),
    [
        (ONE_BOX, 4, {"size": 2}, [3, 2]),  # the newest first, only as many as needed
        (ONE_BOX, 3, {"size": 2}, [2]),  # one is free already
        (ONE_BOX, 4, {"size": 3}, [3, 2, 1]),
        # One domain of 4 wanted: a's runs filled the first domain and hold 2 of the second
        # (the fullest first); the second domain's two runs are enough.
        (TWO_DOMAINS, 6, {"size": 4, "one_domain": True}, [5, 4]),
    ],
)
def test_victims_are_the_newest_runs_of_pools_over_their_quota(
    spec, a_jobs, b_job, victims
) -> None:
    _, preemption = borrowed(spec, a_jobs, b_job)
    assert preemption.victims(a_jobs, 0) == victims


def test_a_pool_within_its_quota_is_not_preempted() -> None:
    _, preemption = borrowed(ONE_BOX, 2, {"size": 4})  # a holds 2 of its quota of 2
    assert preemption.victims(2, 0) is None


def test_a_reclaim_pass_preempts_and_starts_the_waiting_job() -> None:
    e, preemption = borrowed(ONE_BOX, 4, {"size": 2})
    preemption.run()
    assert e.runs.running[4] and e.runs.start_time[4] == 30.0
    assert e.runs.cut_job == [3, 2] and e.runs.preemptions == 2
    # The cut jobs wait again as runs 5 and 6, queued now.
    assert e.queues.total == 2 and e.runs.origin[5:] == [3, 2]
    assert preemption.used_on[0] == [2, 2]


def test_a_policy_that_preempts_must_keep_each_queue_to_one_pool() -> None:
    jobs = [
        {"submit": 0, "runtime": 1, "size": 1, "tenant": "a"},
        {"submit": 0, "runtime": 1, "size": 1, "tenant": "b"},
    ]
    fifo = make_policy("fifo")  # one queue for everyone
    fifo.preempts = True
    with pytest.raises(ValueError, match="a queue holds several pools"):
        Preemption(engine(ONE_BOX, jobs, fifo, **POOLS))
