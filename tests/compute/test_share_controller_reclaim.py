"""The share controller's reclaim plan on hand-made cases: caps only while an under-served
pool waits, victims never below their fair split, the hourly budget, credit repaid."""

from __future__ import annotations

import pytest

from commonlab.compute.share_controller import ReclaimSettings, Running, plan_reclaim
from commonlab.errors import InvalidInput

ENTITLED = {"a": 0.5, "b": 0.5}


def runs(pool: str, sizes: list[int], *, first: float = 0.0) -> list[Running]:
    """Runs of `pool`, one a second from `first`, named pool + index."""
    return [
        Running(job=f"{pool}{i}", pool=pool, accelerators=size, started=first + i)
        for i, size in enumerate(sizes)
    ]


def test_a_pool_that_grabbed_the_machine_is_capped_and_its_newest_runs_preempted() -> None:
    # b holds all 100 accelerators; a waits for 60 in 10s: fair is 50 each.
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 10),
        waiting={"a": [10] * 6, "b": [10] * 3},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.targets == pytest.approx({"a": 50, "b": 50})
    assert plan.caps == {"a": None, "b": 50}
    assert plan.reclaim_for == {"a": 50}
    assert plan.preempt == ["b9", "b8", "b7", "b6", "b5"]  # newest first


def test_the_runs_that_lose_the_least_work_go_first() -> None:
    # b holds all 100 in ten 10s; a is owed 20. b8 and b9 are the newest but have run 20
    # and 10 minutes since their start; b1 and b4 passed a checkpoint a minute ago.
    lost = {"b1": 60.0, "b4": 60.0, "b8": 1_200.0, "b9": 600.0}
    running = [
        Running(f"b{i}", "b", 10, started=float(i), since_checkpoint=lost.get(f"b{i}", 3_000.0))
        for i in range(10)
    ]
    plan = plan_reclaim(
        capacity=100,
        entitled={"a": 0.2, "b": 0.8},
        running=running,
        waiting={"a": [10, 10], "b": [10]},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.preempt == ["b4", "b1"]  # the newer of the two that lose a minute first


def test_nobody_under_served_means_no_caps_and_no_preemption() -> None:
    # b uses the whole machine but a waits for nothing: work conservation.
    plan = plan_reclaim(
        capacity=100, entitled=ENTITLED, running=runs("b", [10] * 10), waiting={"b": [10]}
    )
    assert plan.caps == {"a": None, "b": None}
    assert plan.preempt == []
    assert plan.reclaim_for == {}
    # On target within the tolerance: nothing moves either.
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("a", [1] * 50) + runs("b", [1] * 50),
        waiting={"a": [1], "b": [1]},
    )
    assert plan.preempt == [] and plan.caps == {"a": None, "b": None}


def test_a_victim_is_never_taken_below_its_fair_split() -> None:
    # b holds 60 (fair 50) in one 40 and two 10s, the 40 newest: preempting it would leave
    # b at 20, so the newer 10 goes instead.
    running = [
        Running("b-old", "b", 10, started=0),
        Running("b-mid", "b", 10, started=1),
        Running("b-big", "b", 40, started=2),
        *runs("a", [10] * 4),
    ]
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=running,
        waiting={"a": [10] * 3, "b": [10]},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.reclaim_for == {"a": 10}
    assert plan.preempt == ["b-mid"]
    # a is owed a lot and asks for 20 more, but b holds only 10 above its split: only
    # what keeps b at 50 goes.
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=running,
        waiting={"a": [10, 10], "b": [10]},
        credit={"a": 86_400 * 100},  # a's target: at most what it asks for (60)
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.targets == pytest.approx({"a": 60, "b": 50})
    assert plan.reclaim_for == {"a": 20}
    assert plan.preempt == ["b-mid"]


def test_the_hourly_budget_bounds_what_is_preempted() -> None:
    settings = ReclaimSettings(budget=0.2)  # 20 of 100 accelerators an hour
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 10),
        waiting={"a": [10] * 6},
        settings=settings,
    )
    assert plan.preempt == ["b9", "b8"]
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 10),
        waiting={"a": [10] * 6},
        preempted_last_hour=15,
        settings=settings,
    )
    assert plan.preempt == []  # 5 left of the budget: no run of 10 fits in it
    off = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 10),
        waiting={"a": [10] * 6},
        settings=ReclaimSettings(budget=0.0),
    )
    assert off.preempt == [] and off.caps["b"] == 50  # caps hold without preemption


def test_free_capacity_is_used_before_anything_is_preempted() -> None:
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 7),
        waiting={"a": [10] * 4, "b": [10] * 9},
        settings=ReclaimSettings(budget=1.0),
    )
    # Delivered 70, both ask for more than half: a's target 35, room for 40 (a 10 over
    # by less than half its size), 30 free, so one run of b goes.
    assert plan.targets["a"] == pytest.approx(35)
    assert plan.reclaim_for == {"a": 40}
    assert plan.preempt == ["b6"]


def test_a_gang_larger_than_the_deficit_reclaims_nothing() -> None:
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("a", [10] * 4) + runs("b", [10] * 6),
        waiting={"a": [64], "b": [10]},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.reclaim_for == {}
    assert plan.preempt == []
    # But b starts nothing more: a's gang fits a's target (50) and runs when b's end.
    assert plan.caps == {"a": None, "b": 50}
    assert plan.under_served == ["a"]


def test_a_gang_larger_than_its_pools_target_holds_nobody_back() -> None:
    # a's target is 20 of 100: a gang of 64 would never run within it; capping b for it
    # would idle what b leaves.
    plan = plan_reclaim(
        capacity=100,
        entitled={"a": 0.2, "b": 0.8},
        running=runs("a", [10]) + runs("b", [10] * 9),
        waiting={"a": [64], "b": [10]},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.under_served == ["a"]
    assert plan.caps == {"a": None, "b": None}
    assert plan.preempt == []


def test_credit_moves_targets_within_bounds() -> None:
    # a was over-served (negative credit): its target drops, b's rises.
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("a", [10] * 5) + runs("b", [10] * 5),
        waiting={"a": [10], "b": [10]},
        credit={"a": -86_400 * 10, "b": 86_400 * 10},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.targets == pytest.approx({"a": 40, "b": 60})
    assert plan.caps == {"a": 40, "b": None}
    assert plan.reclaim_for == {"b": 10}
    assert plan.preempt == ["a4"]


def test_in_use_lets_the_caller_pass_only_candidate_victims() -> None:
    plan = plan_reclaim(
        capacity=100,
        entitled=ENTITLED,
        running=runs("b", [10] * 2, first=100),
        waiting={"a": [10]},
        in_use={"a": 40, "b": 60},
        settings=ReclaimSettings(budget=1.0),
    )
    assert plan.preempt == ["b1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 0}, "capacity"),
        ({"waiting": {"c": [1]}}, "without an entitlement: c"),
        ({"waiting": {"a": [0]}}, "at least one accelerator"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    args = {"capacity": 10, "entitled": ENTITLED, "running": [], "waiting": {}} | kwargs
    with pytest.raises(InvalidInput, match=message):
        plan_reclaim(**args)
    with pytest.raises(InvalidInput, match="budget"):
        ReclaimSettings(budget=2)


def test_a_gang_larger_than_the_hourly_budget_goes_once_its_pool_has_had_its_turn() -> None:
    # b runs one gang of 80 on a fleet of 100, b's fair split 20; a waits for 40. The budget
    # is 25 an hour, so the gang is never within the rules; an hour of it beyond b's fair
    # split is b's turn here.
    settings = ReclaimSettings(budget=0.25, turn_s=3_600.0)
    owed = 3_600.0 * 80  # accelerator-seconds b has received beyond its fair split

    def plan(*, credit: float, preempted_last_hour: float = 0.0) -> list[object]:
        return plan_reclaim(
            capacity=100,
            entitled={"a": 0.8, "b": 0.2},
            running=runs("b", [80]),
            waiting={"a": [10] * 4},
            credit={"a": owed, "b": -credit},
            preempted_last_hour=preempted_last_hour,
            settings=settings,
        ).preempt

    assert plan(credit=owed) == ["b0"]
    assert plan(credit=owed - 1) == []  # its turn is not over yet
    assert plan(credit=owed, preempted_last_hour=5) == []  # not in an hour with others
    # Within the budget the old rules hold: never below the pool's target.
    assert (
        plan_reclaim(
            capacity=100,
            entitled={"a": 0.8, "b": 0.2},
            running=runs("b", [20]),
            waiting={"a": [10] * 4},
            credit={"a": owed, "b": -10 * owed},
            settings=settings,
        ).preempt
        == []
    )
    with pytest.raises(InvalidInput, match="turn_s > 0"):
        ReclaimSettings(turn_s=0)
