"""Allocation rules: conflicts, tranches, carry-over, sub-allocation bounds, shares."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commonlab.allocation.rules import (
    Candidate,
    available_hours,
    check_sub_allocation,
    conflicts,
    quarters,
    share_report,
)

D = Decimal
PI = Candidate(person_id=1, institution_id=10, country="KE")


@pytest.mark.parametrize(
    ("reviewer", "kwargs", "reasons"),
    [
        (Candidate(2, 20, "IT"), {}, []),
        (Candidate(2, 10, "IT"), {}, ["same institution as the PI"]),
        (Candidate(3, 20, "IT"), {"team": [3]}, ["named on the proposal"]),
        (Candidate(1, 10, "KE"), {}, ["named on the proposal", "same institution as the PI"]),
        (Candidate(4, 20, "IT"), {"co_authors": [4]}, ["co-author of the PI"]),
        (Candidate(5, 20, "IT"), {"declared": [1]}, ["declared a conflict"]),
        (Candidate(5, 20, "IT"), {"declared": [3], "team": [3]}, ["declared a conflict"]),
        (Candidate(5, 20, "IT"), {"declared": [8]}, []),
        (Candidate(6, 20, "KE"), {}, []),
        (
            Candidate(6, 20, "KE"),
            {"exclude_same_country": True},
            ["same country as the PI (the call's rule)"],
        ),
        (Candidate(7, None, None), {"exclude_same_country": True}, []),
    ],
)
def test_conflicts(reviewer, kwargs, reasons):
    options = {
        "team": [],
        "co_authors": [],
        "declared": [],
        "exclude_same_country": False,
        **kwargs,
    }
    assert conflicts(reviewer, pi=PI, **options) == reasons


def test_a_year_is_four_tranches_that_sum_to_the_budget():
    tranches = quarters(D(20000), date(2027, 1, 1), date(2028, 1, 1))
    assert [t.starts for t in tranches] == [
        date(2027, 1, 1),
        date(2027, 4, 1),
        date(2027, 7, 1),
        date(2027, 10, 1),
    ]
    assert sum(t.hours for t in tranches) == D(20000)
    assert tranches[0].hours == D("4931.51")  # 90 of 365 days


def test_quarters_keep_the_start_day_and_clip_to_short_months():
    tranches = quarters(D(100), date(2027, 1, 31), date(2027, 12, 31))
    assert [t.starts for t in tranches][:3] == [
        date(2027, 1, 31),
        date(2027, 4, 30),
        date(2027, 7, 31),
    ]


@given(
    st.decimals(min_value=0, max_value=10**7, places=2),
    st.dates(min_value=date(2026, 1, 1), max_value=date(2030, 1, 1)),
    st.integers(min_value=1, max_value=1200),
)
def test_tranches_always_sum_to_the_budget_and_tile_the_period(total, start, days):
    end = start + timedelta(days=days)
    tranches = quarters(total, start, end)
    assert sum(t.hours for t in tranches) == total
    assert tranches[0].starts == start and tranches[-1].ends == end
    assert all(a.ends == b.starts for a, b in pairwise(tranches))


def test_carry_over_moves_only_the_allowed_share_of_what_was_left():
    tranches = quarters(D(400), date(2027, 1, 1), date(2028, 1, 1))
    q1 = tranches[0].hours
    # Q1 used 30 of its hours: 25% of the rest carries into Q2.
    left = available_hours(tranches, {0: D(30)}, on=date(2027, 5, 1), carry_over_percent=D(25))
    assert left == tranches[1].hours + (q1 - 30) * D("0.25")
    none_carried = available_hours(tranches, {0: q1}, on=date(2027, 5, 1), carry_over_percent=D(25))
    assert none_carried == tranches[1].hours
    assert available_hours(tranches, {}, on=date(2029, 1, 1), carry_over_percent=D(25)) == 0


@given(
    st.lists(st.decimals(min_value=0, max_value=800, places=2), min_size=4, max_size=4),
    st.integers(0, 100),
)
def test_drawing_only_what_is_available_never_exceeds_the_budget(requests, carry):
    tranches = quarters(D(1000), date(2027, 1, 1), date(2028, 1, 1))
    drawn: dict[int, Decimal] = {}
    for q, wanted in zip(tranches, requests, strict=True):
        left = available_hours(tranches, drawn, on=q.starts, carry_over_percent=D(carry))
        drawn[q.index] = min(wanted, left)
    assert sum(drawn.values()) <= D(1000)


def test_sub_allocations_never_exceed_their_parent():
    parent = {"H100": D(1000)}
    check_sub_allocation(parent, [{"H100": D(600)}], {"H100": D(400)})
    with pytest.raises(ValueError, match="only 400"):
        check_sub_allocation(parent, [{"H100": D(600)}], {"H100": D("400.01")})
    with pytest.raises(ValueError, match="no MI300"):
        check_sub_allocation(parent, [], {"MI300": D(1)})
    with pytest.raises(ValueError, match="positive"):
        check_sub_allocation(parent, [], {"H100": D(0)})


@given(st.lists(st.decimals(min_value="0.01", max_value=300, places=2), max_size=12))
def test_accepted_sub_allocations_always_fit(requests):
    parent = {"H100": D(1000)}
    accepted: list[dict[str, Decimal]] = []
    for hours in requests:
        try:
            check_sub_allocation(parent, accepted, {"H100": hours})
        except ValueError:
            continue
        accepted.append({"H100": hours})
    assert sum(a["H100"] for a in accepted) <= parent["H100"]


def test_share_report_flags_states_outside_the_band():
    lines = share_report(
        {"IT": D(300), "FR": D(200), "DE": D(500)},
        {"IT": D(25), "FR": D(25), "DE": D(50)},
        tolerance=D(2),
    )
    by_code = {line.code: line for line in lines}
    assert by_code["IT"].delivered_percent == D(30) and by_code["IT"].outside_band
    assert by_code["FR"].deviation == D(-5) and by_code["FR"].outside_band
    assert not by_code["DE"].outside_band
    assert sum(line.delivered_percent for line in lines) == D(100)


@given(
    st.dictionaries(
        st.sampled_from(["IT", "FR", "DE", "ES"]),
        st.decimals(min_value=0, max_value=10**6, places=2),
        min_size=1,
    )
)
def test_delivered_shares_sum_to_the_whole(delivered):
    lines = share_report(
        delivered, {"IT": D(25), "FR": D(25), "DE": D(25), "ES": D(25)}, tolerance=D(2)
    )
    total = sum(line.delivered_percent for line in lines)
    if sum(delivered.values()) > 0:
        assert abs(total - 100) <= D("0.01") * len(lines)
    else:
        assert total == 0
