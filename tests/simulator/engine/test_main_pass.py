"""The main pass alone: heads in priority order on their best fit, a head that cannot start
blocking only the partitions it may use, runs behind it taking the others, the depth bound,
and the queues of a pool at its cap set aside until it runs below it."""

from __future__ import annotations

import math

import numpy as np

from commonlab.simulator.engine import EngineSettings
from commonlab.simulator.engine.main_pass import MainPass
from commonlab.simulator.policies import FifoBackfill
from tests.simulator.engine.helpers import arrive, engine
from tests.simulator.helpers import fleet

TWO_CLASSES = fleet(
    {"name": "h", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4},
    {"name": "a", "accelerator": "A100", "nodes": 1, "accelerators_per_node": 4},
)


def started(e) -> list[int]:
    return [j for j in range(len(e.runs.running)) if e.runs.running[j]]


def test_heads_start_in_order_until_the_capacity_is_used() -> None:
    jobs = [{"submit": 0, "runtime": 10, "size": s} for s in (4, 2, 2, 1)]
    e = engine(TWO_CLASSES, jobs)
    arrive(e, 0, 1, 2, 3)
    MainPass(e).run()
    assert started(e) == [0, 1, 2]
    assert e.placement.free == [0, 0] and e.queues.total == 1


def test_a_blocked_head_holds_its_partitions_but_not_the_others() -> None:
    jobs = [
        {"submit": 0, "runtime": 10, "size": 3, "classes": ["H100"]},
        {"submit": 0, "runtime": 10, "size": 2, "classes": ["H100"]},  # blocked: 1 free on h
        {"submit": 0, "runtime": 10, "size": 1},  # may not take h's last one, takes a
        {"submit": 0, "runtime": 10, "size": 1, "classes": ["H100"]},  # only h: held
    ]
    e = engine(TWO_CLASSES, jobs)
    arrive(e, 0, 1, 2, 3)
    MainPass(e).run()
    assert started(e) == [0, 2]
    assert [e.runs.placed[j] for j in (0, 2)] == [0, 1]
    assert e.placement.free == [1, 3]


def test_the_pass_tries_at_most_main_depth_jobs() -> None:
    jobs = [{"submit": 0, "runtime": 10, "size": 1} for _ in range(6)]
    e = engine(TWO_CLASSES, jobs, settings=EngineSettings(main_depth=2))
    arrive(e, *range(6))
    MainPass(e).run()
    assert started(e) == [0, 1]


class CappedFifo(FifoBackfill):
    """FIFO with one queue per pool and fixed caps per pool (GrpTRES)."""

    def __init__(self, caps: list[float]) -> None:
        self.caps = caps

    def bind(self, state):
        super().bind(state)
        return state.workload.pool.astype(np.int64)


def test_a_pool_at_its_cap_waits_out_of_the_heap_and_returns_below_it() -> None:
    jobs = [
        {"submit": 0, "runtime": 10, "size": 2, "tenant": "a"},
        {"submit": 1, "runtime": 10, "size": 1, "tenant": "a"},  # a holds its cap of 2
        {"submit": 2, "runtime": 10, "size": 1, "tenant": "b"},
    ]
    e = engine(
        TWO_CLASSES,
        jobs,
        CappedFifo([2, math.inf]),
        pools=("a", "b"),
        entitled=(0.5, 0.5),
        tenant_pools={"a": "a", "b": "b"},
    )
    arrive(e, 0, 1, 2)
    main = MainPass(e)
    main.run()
    assert started(e) == [0, 2]
    # Pool a's queue left the heap, but a backfill pass still reads it in its place.
    assert list(e.queues.parked) == [0]
    assert all(entry[3] != 0 for entry in e.queues.heap)
    assert [entry[3] for entry in e.queues.ranked_heads()] == [0]
    main.run()  # still at its cap: nothing changes
    assert started(e) == [0, 2]
    e.state.now = 10.0
    e.finish(0)
    main.run()
    assert started(e) == [1, 2] and not e.queues.parked


def test_a_rerank_forgets_the_parked_queues() -> None:
    jobs = [
        {"submit": 0, "runtime": 10, "size": 2, "tenant": "a"},
        {"submit": 1, "runtime": 10, "size": 1, "tenant": "a"},
    ]
    e = engine(TWO_CLASSES, jobs, CappedFifo([2]), pools=("a",), tenant_pools={"a": "a"})
    arrive(e, 0, 1)
    MainPass(e).run()
    assert e.queues.parked
    e.queues.rerank()
    assert not e.queues.parked and [entry[3] for entry in e.queues.ranked_heads()] == [0]
