"""Placement alone: best fit, one-domain jobs, packing into the fullest domains, and giving
accelerators back."""

from __future__ import annotations

import pytest

from commonlab.simulator.engine.placement import Placement
from tests.simulator.engine.helpers import part


def placement(parts, jobs: list[tuple[int, bool, tuple[int, ...]]], **kw) -> Placement:
    """jobs: (size, one_domain, eligible partitions) per run."""
    return Placement(
        parts,
        size=[s for s, _, _ in jobs],
        one_domain=[d for _, d, _ in jobs],
        eligible=[e for _, _, e in jobs],
        **kw,
    )


@pytest.mark.parametrize(
    ("size", "one_domain", "blocked", "expected"),
    [
        (3, False, None, 0),  # the partition with the least free that fits: 4 < 8
        (5, False, None, 1),  # only the larger one holds 5
        (3, False, {0}, 1),  # a blocked partition is not chosen
        (9, False, None, -1),  # nothing holds 9
        (6, True, None, -1),  # one domain of partition 1 holds at most 4
        (4, True, None, 0),  # the 4 of partition 0 are one domain
    ],
)
def test_choose_takes_the_best_fit(size, one_domain, blocked, expected) -> None:
    p = placement([part(4, name="a"), part(4, 4, name="b")], [(size, one_domain, (0, 1))])
    assert p.choose(0, blocked) == expected


def test_a_one_domain_job_fits_only_where_one_domain_holds_it() -> None:
    # Two domains of 4; run 0 takes 3 of one, run 1 takes 3 of the other: 2 free, split.
    p = placement(
        [part(4, 4)], [(3, True, (0,)), (3, True, (0,)), (2, True, (0,)), (2, False, (0,))]
    )
    p.take(0, 0)
    p.take(1, 0)
    assert p.free == [2]
    assert not p.fits(2, 0)  # 1 + 1 free in two domains
    assert p.fits(3, 0)  # a job that may span domains fits


@pytest.mark.parametrize(
    ("first", "second", "domains_after"),
    [
        # A one-domain job goes to the domain with the fewest free accelerators that holds it.
        ((3, True), (1, True), [0, 4, 4]),
        # A spanning job takes from the fullest domains first, keeping whole domains free.
        ((3, True), (3, False), [0, 2, 4]),
        ((2, False), (6, False), [0, 0, 4]),
    ],
)
def test_take_packs_and_give_back_restores(first, second, domains_after) -> None:
    p = placement([part(4, 4, 4)], [(*first, (0,)), (*second, (0,))])
    p.take(0, 0)
    p.take(1, 0)
    assert sorted(p.dfree[0]) == domains_after
    assert p.free_total == sum(domains_after) and p.starts_on == [2]
    p.give_back(1, 0)
    p.give_back(0, 0)
    assert p.dfree[0] == [4, 4, 4] and p.free == [12] and p.allocation == {}


def test_best_domain_is_the_tightest_that_holds_the_job() -> None:
    p = placement([part(4, 4, 4)], [(1, True, (0,)), (2, True, (0,))])
    p.take(0, 0)  # a domain with 3 free
    assert p.dfree[0][p.best_domain(0, 3)] == 3
    assert p.dfree[0][p.best_domain(0, 4)] == 4
    assert p.best_domain(0, 5) == -1


def test_runs_per_domain_are_kept_only_when_asked() -> None:
    jobs = [(2, False, (0,)), (4, True, (0,))]
    tracked = placement([part(4, 4)], jobs, track_domains=True)
    tracked.take(0, 0)
    tracked.take(1, 0)
    assert sorted(map(sorted, tracked.domain_runs[0])) == [[0], [1]]
    tracked.give_back(0, 0)
    assert sorted(map(sorted, tracked.domain_runs[0])) == [[], [1]]
    assert placement([part(4, 4)], jobs).domain_runs == []
