"""EASY backfill alone: the reservation of the first job that cannot start, and which
later jobs may start around it."""

from __future__ import annotations

import math

import pytest

from commonlab.simulator.engine.backfill import Backfill
from commonlab.simulator.engine.main_pass import MainPass
from tests.simulator.engine.helpers import ONE_BOX, TWO_DOMAINS, arrive, engine
from tests.simulator.helpers import fleet

TWO_PARTS = fleet(
    {"name": "h", "accelerator": "H100", "nodes": 1, "accelerators_per_node": 4},
    {"name": "a", "accelerator": "A100", "nodes": 1, "accelerators_per_node": 4},
)


def running(spec, sizes_and_runtimes, waiting, **kw):
    """An engine with the first jobs started at t=0 and `waiting` queued behind them."""
    jobs = [{"submit": 0, "runtime": r, "size": s} for s, r in sizes_and_runtimes]
    jobs += [{"submit": 0, **w} for w in waiting]
    e = engine(spec, jobs, **kw)
    for j in range(len(sizes_and_runtimes)):
        arrive(e, j)
        e.start(j, 0)
    arrive(e, *range(len(sizes_and_runtimes), len(jobs)))
    return e


@pytest.mark.parametrize(
    ("spec", "running_jobs", "head", "expected"),
    [
        # 1 free; the head needs 4: at t=100 the 3 of the first job come back, 0 spare.
        (ONE_BOX, [(3, 100)], {"size": 4}, (100, 0, 0)),
        # The head needs 3: by t=100 three are back (none spare); with 2+2 running, one is.
        (ONE_BOX, [(2, 50), (1, 100), (1, 200)], {"size": 3}, (100, 0, 0)),
        (ONE_BOX, [(2, 50), (2, 100)], {"size": 3}, (100, 0, 1)),
        # One domain of 4 wanted: the second running job packed 1 into the first's domain
        # and 2 into the other, so no domain is whole before t=200; nothing is lent.
        (TWO_DOMAINS, [(3, 100), (3, 200)], {"size": 4, "one_domain": True}, (200, 0, -1)),
    ],
)
def test_the_reservation_is_when_enough_running_work_has_ended(
    spec, running_jobs, head, expected
) -> None:
    e = running(spec, running_jobs, [{"runtime": 10, **head}])
    assert Backfill(e).reservation(len(running_jobs)) == expected


def test_no_reservation_when_nothing_running_frees_enough() -> None:
    e = running(ONE_BOX, [], [{"runtime": 10, "size": 4}])
    e.placement.free[0] = 2  # as if two accelerators were gone
    assert Backfill(e).reservation(0) == (math.inf, -1, -1)


@pytest.mark.parametrize(
    ("candidate", "backfilled"),
    [
        ({"size": 1, "runtime": 50}, True),  # ends before the head's reservation at t=100
        ({"size": 1, "runtime": 500}, False),  # would hold the head's accelerator past it
    ],
)
def test_a_job_starts_around_the_reservation_only_if_it_cannot_delay_it(
    candidate, backfilled
) -> None:
    e = running(ONE_BOX, [(3, 100)], [{"size": 4, "runtime": 10}, candidate])
    MainPass(e).run()  # the head blocks the only partition: nothing starts
    assert e.queues.total == 2
    fill = Backfill(e)
    fill.run()
    assert bool(e.runs.running[2]) is backfilled and fill.backfilled == int(backfilled)
    assert not e.runs.running[1]


def test_the_reservation_is_kept_until_its_partition_sees_a_start() -> None:
    e = running(ONE_BOX, [(3, 100)], [{"size": 4, "runtime": 10}])
    fill = Backfill(e)
    fill.run()
    kept = list(fill._kept)
    assert kept[:4] == [1, 0, 100, 0]
    e.runs.completions.clear()  # were it recomputed, there would be no reservation
    fill.run()
    assert fill._kept == kept


def test_a_size_that_fits_nowhere_turns_away_larger_jobs_but_not_smaller_ones() -> None:
    # Head of 4 reserved at t=100 (1 free now, none spare). Behind it: a 2 that fits nowhere,
    # a larger 3 that cannot either, a 1 too long for the reservation, and a 1 that ends in
    # time; then a second 1 that ends in time but finds nothing free any more.
    waiting = [
        {"size": 4, "runtime": 10},
        {"size": 2, "runtime": 10},
        {"size": 3, "runtime": 10},
        {"size": 1, "runtime": 500},
        {"size": 1, "runtime": 50},
        {"size": 1, "runtime": 50},
    ]
    e = running(ONE_BOX, [(3, 100)], waiting)
    fill = Backfill(e)
    fill.run()
    assert [j for j in range(1, 7) if e.runs.running[j]] == [5]
    assert fill.backfilled == 1 and e.queues.total == 5


def test_a_pass_drops_the_started_runs_it_read_past() -> None:
    # Two 1s start behind the blocked head; the next pass reads past them once, and drops
    # them, so that the pass after it does not.
    waiting = [
        {"size": 4, "runtime": 10},
        {"size": 1, "runtime": 50},
        {"size": 1, "runtime": 50},
        {"size": 2, "runtime": 10},
    ]
    e = running(ONE_BOX, [(1, 100)], waiting)
    fill = Backfill(e)
    fill.run()
    assert [e.runs.running[j] for j in range(1, 5)] == [0, 1, 1, 0]
    q = e.queues.queue[0]
    assert q[e.queues.head[0] :] == [1, 2, 3, 4]
    fill.run()
    assert q[e.queues.head[0] :] == [1, 4] and e.queues.total == 2


def test_a_smaller_job_still_finds_the_partition_a_larger_one_did_not() -> None:
    # 1 free on each partition; the head of 4 reserves the first. A 2 fits nowhere, a 1
    # too long for the reservation still takes the other partition's last accelerator.
    jobs = [
        {"submit": 0, "runtime": 100, "size": 3},
        {"submit": 0, "runtime": 200, "size": 3},
        {"submit": 0, "runtime": 10, "size": 4},
        {"submit": 0, "runtime": 500, "size": 2},
        {"submit": 0, "runtime": 500, "size": 1},
    ]
    e = engine(TWO_PARTS, jobs)
    arrive(e, *range(5))
    e.start(0, 0)
    e.start(1, 1)
    fill = Backfill(e)
    fill.run()
    assert [j for j in range(2, 5) if e.runs.running[j]] == [4]
    assert e.runs.placed[4] == 1 and fill.backfilled == 1
