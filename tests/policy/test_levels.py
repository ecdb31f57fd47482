"""The containment lattice in plain Python (policy/levels.py): the rules that explain denials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commonlab.policy.levels import (
    Clearance,
    Level,
    can_place,
    can_read,
    can_write,
    epoch_seconds,
    output_level,
    placement_denial,
    read_denials,
    write_denials,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)


def clr(level: Level, *compartments: str, expires: datetime = LATER) -> Clearance:
    return Clearance(level, expires, frozenset(compartments))


# --- reading -----------------------------------------------------------------------------

READ_CASES = [
    # (name, clearance, level, compartments, project, projects, session, expected reasons)
    ("CL-1 is open to anyone", None, Level.CL1, {"bio"}, "p-1", set(), False, []),
    (
        "no clearance",
        None,
        Level.CL2,
        set(),
        None,
        set(),
        False,
        [
            "you hold no clearance; this resource is CL-2 — "
            "ask a safety officer for a CL-2 clearance"
        ],
    ),
    ("equal level", clr(Level.CL2), Level.CL2, set(), None, set(), False, []),
    ("higher level", clr(Level.CL3), Level.CL2, set(), None, set(), False, []),
    (
        "read up",
        clr(Level.CL2),
        Level.CL3,
        set(),
        None,
        set(),
        False,
        ["your clearance CL-2 is below this resource's CL-3"],
    ),
    (
        "expired",
        clr(Level.CL3, expires=datetime(2026, 1, 1, tzinfo=UTC)),
        Level.CL3,
        set(),
        None,
        set(),
        False,
        ["your clearance expired on 2026-01-01 — ask a safety officer to renew it"],
    ),
    (
        "expires this very second",
        clr(Level.CL3, expires=NOW),
        Level.CL3,
        set(),
        None,
        set(),
        False,
        ["your clearance expired on 2026-03-01 12:00 UTC — ask a safety officer to renew it"],
    ),
    ("one compartment held", clr(Level.CL3, "bio"), Level.CL3, {"bio"}, None, set(), False, []),
    (
        "compartment missing",
        clr(Level.CL3, "chem"),
        Level.CL3,
        {"bio"},
        None,
        set(),
        False,
        ["you lack compartment 'bio'"],
    ),
    (
        "two compartments missing",
        clr(Level.CL3),
        Level.CL2,
        {"chem", "bio"},
        None,
        set(),
        False,
        ["you lack compartments 'bio', 'chem'"],
    ),
    ("member", clr(Level.CL2), Level.CL2, set(), "p-12", {"p-12"}, False, []),
    (
        "not a member",
        clr(Level.CL2),
        Level.CL2,
        set(),
        "p-12",
        {"p-1"},
        False,
        ["you are not a member of project p-12"],
    ),
    (
        "CL-4 without a session grant",
        clr(Level.CL4),
        Level.CL4,
        set(),
        None,
        set(),
        False,
        ["CL-4 access needs a per-session grant; request one for this session"],
    ),
    ("CL-4 with a session grant", clr(Level.CL4), Level.CL4, set(), None, set(), True, []),
    (
        "everything wrong at once",
        clr(Level.CL2, expires=datetime(2026, 1, 1, tzinfo=UTC)),
        Level.CL4,
        {"bio"},
        "p-12",
        set(),
        False,
        [
            "your clearance CL-2 is below this resource's CL-4",
            "your clearance expired on 2026-01-01 — ask a safety officer to renew it",
            "you lack compartment 'bio'",
            "you are not a member of project p-12",
            "CL-4 access needs a per-session grant; request one for this session",
        ],
    ),
]


@pytest.mark.parametrize(
    ("clearance", "level", "compartments", "project", "projects", "session", "expected"),
    [case[1:] for case in READ_CASES],
    ids=[case[0] for case in READ_CASES],
)
def test_read_denials(clearance, level, compartments, project, projects, session, expected):
    kwargs = dict(now=NOW, project=project, projects=projects, session_grant=session)
    assert read_denials(clearance, level, compartments, **kwargs) == expected
    assert can_read(clearance, level, compartments, **kwargs) is (not expected)


# --- writing -----------------------------------------------------------------------------

WRITE_CASES = [
    ("same level", clr(Level.CL2), Level.CL2, Level.CL2, True),
    ("up is fine", clr(Level.CL3), Level.CL3, Level.CL1, True),
    ("write-down", clr(Level.CL3), Level.CL2, Level.CL3, False),
    ("CL-1 data into CL-1", None, Level.CL1, Level.CL1, True),
    ("CL-2 data into CL-1", clr(Level.CL2), Level.CL1, Level.CL2, False),
    ("no data level", clr(Level.CL2), Level.CL2, None, False),
    ("write up needs reach too", clr(Level.CL2), Level.CL3, Level.CL2, False),
]


@pytest.mark.parametrize(
    ("clearance", "level", "data_level", "allowed"),
    [case[1:] for case in WRITE_CASES],
    ids=[case[0] for case in WRITE_CASES],
)
def test_write(clearance, level, data_level, allowed):
    assert can_write(clearance, level, data_level=data_level, now=NOW) is allowed


def test_write_down_says_what_to_do():
    [reason] = write_denials(clr(Level.CL3), Level.CL2, data_level=Level.CL3, now=NOW)
    assert reason == (
        "writing CL-3 data into this CL-2 resource would lower its containment (no write-down); "
        "write it into a resource at CL-3 or above, or have it released"
    )


def test_write_carries_the_read_reasons_too():
    reasons = write_denials(clr(Level.CL2), Level.CL3, data_level=Level.CL3, now=NOW)
    assert reasons == ["your clearance CL-2 is below this resource's CL-3"]


# --- placement and outputs ----------------------------------------------------------------

PLACEMENT_CASES = [(job, part, job <= part) for job in Level for part in Level]


@pytest.mark.parametrize(("job", "partition", "allowed"), PLACEMENT_CASES)
def test_placement_only_at_or_above_the_jobs_level(job, partition, allowed):
    assert can_place(job, partition) is allowed


def test_placement_denial_names_the_levels():
    assert placement_denial(Level.CL3, Level.CL2) == (
        "this CL-3 job cannot run on a partition certified only for CL-2; "
        "place it on one certified CL-3 or above"
    )
    assert placement_denial(None, Level.CL4) == "placing a job must say the job's level (job_level)"


def test_output_level_is_the_most_contained_input():
    assert output_level(Level.CL1) is Level.CL1
    assert output_level(Level.CL2, Level.CL1, Level.CL3) is Level.CL3
    with pytest.raises(ValueError, match="needs the levels"):
        output_level()


@given(st.lists(st.sampled_from(list(Level)), min_size=1, max_size=6))
def test_output_level_never_lowers_containment(levels):
    out = output_level(*levels)
    assert all(out >= level for level in levels)
    assert out in levels
    # Adding one more input can only raise it.
    assert all(output_level(*levels, extra) >= out for extra in Level)


# --- time --------------------------------------------------------------------------------


def test_epoch_seconds():
    assert epoch_seconds(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_seconds(datetime(1970, 1, 1, 0, 0, 1, 999_999, tzinfo=UTC)) == 1
    assert epoch_seconds(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -1
    # Naive means UTC; other zones are converted.
    assert epoch_seconds(datetime(2026, 1, 1)) == epoch_seconds(datetime(2026, 1, 1, tzinfo=UTC))
    plus_two = timezone(timedelta(hours=2))
    assert epoch_seconds(datetime(2026, 1, 1, 2, tzinfo=plus_two)) == epoch_seconds(
        datetime(2026, 1, 1, tzinfo=UTC)
    )


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_epoch_seconds_is_monotone(a, b):
    if a <= b:
        assert epoch_seconds(a) <= epoch_seconds(b)


def test_level_parse_fails_closed():
    assert Level.parse("CL-3") is Level.CL3
    for bad in (0, 5, "CL-9", "", None, "high"):
        with pytest.raises(ValueError, match="unknown containment level"):
            Level.parse(bad)
