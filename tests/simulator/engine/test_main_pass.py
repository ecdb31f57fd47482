"""The main pass alone: heads in priority order on their best fit, a head that cannot start
blocking only the partitions it may use, runs behind it taking the others, and the depth
bound."""

from __future__ import annotations

from commonlab.simulator.engine import EngineSettings
from commonlab.simulator.engine.main_pass import MainPass
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
