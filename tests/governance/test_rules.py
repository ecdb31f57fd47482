"""The voting rules, table-driven and as properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commonlab.governance.rules import Choice, VotingRule, decide

Y, N, A = Choice.YES, Choice.NO, Choice.ABSTAIN
FIVE = frozenset("ABCDE")
EQUAL = {code: Decimal(20) for code in FIVE}
# One large contributor: A alone holds 60%.
SKEWED = {"A": Decimal(60), "B": Decimal(10), "C": Decimal(10), "D": Decimal(10), "E": Decimal(10)}


@pytest.mark.parametrize(
    ("rule", "votes", "weights", "passed", "fragment"),
    [
        (VotingRule.SIMPLE_MAJORITY, {"A": Y, "B": Y, "C": N}, EQUAL, True, "2 yes to 1 no"),
        (VotingRule.SIMPLE_MAJORITY, {"A": Y, "B": N, "C": A}, EQUAL, False, "no simple majority"),
        (VotingRule.SIMPLE_MAJORITY, {"A": Y, "B": A, "C": A}, EQUAL, True, "1 yes to 0 no"),
        (VotingRule.SIMPLE_MAJORITY, {"A": Y, "B": Y}, EQUAL, False, "no quorum"),
        (VotingRule.TWO_THIRDS, {"A": Y, "B": Y, "C": N, "D": A}, EQUAL, True, "two-thirds"),
        (VotingRule.TWO_THIRDS, {"A": Y, "B": Y, "C": N, "D": N}, EQUAL, False, "short of two"),
        (VotingRule.TWO_THIRDS, {"A": Y, "B": Y, "C": Y}, EQUAL, False, "no quorum"),
        (VotingRule.TWO_THIRDS, {"A": A, "B": A, "C": A, "D": A}, EQUAL, False, "short of two"),
        (VotingRule.DOUBLE_MAJORITY, {"A": Y, "B": Y, "C": Y}, EQUAL, True, "double majority"),
        # A majority of states without a majority of contributions fails ...
        (VotingRule.DOUBLE_MAJORITY, {"A": N, "B": Y, "C": Y, "D": Y}, SKEWED, False, "30%"),
        # ... and so does the largest contributor with too few states.
        (VotingRule.DOUBLE_MAJORITY, {"A": Y, "B": Y, "C": N}, SKEWED, False, "2 of 5 states"),
        (VotingRule.DOUBLE_MAJORITY, {"A": Y, "B": Y, "C": Y}, SKEWED, True, "80%"),
        # Abstentions count towards quorum, never towards a double majority.
        (VotingRule.DOUBLE_MAJORITY, {"A": Y, "B": Y, "C": A}, EQUAL, False, "not a majority"),
        # Votes from states that are no longer members are ignored.
        (VotingRule.SIMPLE_MAJORITY, {"A": Y, "B": N, "C": N, "Z": Y}, EQUAL, False, "1 yes"),
    ],
)
def test_outcomes(rule, votes, weights, passed, fragment):
    outcome = decide(rule, votes=votes, members=FIVE, contributions=weights)
    assert outcome.passed is passed
    assert fragment in outcome.reason
    assert outcome.yes + outcome.no + outcome.abstain + outcome.absent == 5


# Three of five states (a majority of states) hold exactly half the contributions, then
# a hundredth of a point more: "more than half" is strict, to the hundredth.
AT_HALF = {"A": Decimal(20), "B": Decimal(20), "C": Decimal(10), "D": Decimal(25), "E": Decimal(25)}
JUST_OVER = {**AT_HALF, "C": Decimal("10.01"), "D": Decimal("24.99")}


@pytest.mark.parametrize(
    ("weights", "passed", "fragment"),
    [
        (AT_HALF, False, "50% of contributions is not a majority"),
        (JUST_OVER, True, "50.01% of contributions"),
    ],
)
def test_a_double_majority_needs_strictly_more_than_half_the_contributions(
    weights, passed, fragment
):
    votes = {"A": Y, "B": Y, "C": Y, "D": N, "E": N}
    outcome = decide(VotingRule.DOUBLE_MAJORITY, votes=votes, members=FIVE, contributions=weights)
    assert outcome.passed is passed and fragment in outcome.reason
    assert "states is not a majority" not in outcome.reason  # 3 of 5 states was never the issue


def test_no_members_never_passes():
    assert not decide(
        VotingRule.SIMPLE_MAJORITY, votes={}, members=frozenset(), contributions={}
    ).passed


codes = st.sampled_from([chr(ord("A") + i) + "X" for i in range(9)])


@st.composite
def councils(draw):
    members = frozenset(draw(st.sets(codes, min_size=1, max_size=9)))
    weights = {code: Decimal(draw(st.integers(0, 40))) for code in members}
    votes = draw(st.dictionaries(codes, st.sampled_from(list(Choice))))
    return members, weights, votes


@given(councils())
def test_a_double_majority_never_passes_without_a_majority_of_states(council):
    members, weights, votes = council
    outcome = decide(
        VotingRule.DOUBLE_MAJORITY, votes=votes, members=members, contributions=weights
    )
    if outcome.passed:
        yes = sum(1 for code, c in votes.items() if code in members and c == Y)
        assert yes * 2 > len(members)
        assert outcome.yes_contribution * 2 > sum(weights.values())


@given(councils(), st.sampled_from(list(VotingRule)))
def test_turning_a_no_into_a_yes_never_turns_a_pass_into_a_fail(council, rule):
    members, weights, votes = council
    before = decide(rule, votes=votes, members=members, contributions=weights)
    for code, choice in votes.items():
        if choice == N:
            after = decide(rule, votes={**votes, code: Y}, members=members, contributions=weights)
            assert after.passed or not before.passed


@given(councils(), st.sampled_from(list(VotingRule)))
def test_passing_always_needs_quorum_and_more_yes_than_no(council, rule):
    members, weights, votes = council
    outcome = decide(rule, votes=votes, members=members, contributions=weights)
    if outcome.passed:
        assert outcome.yes > outcome.no
        assert (outcome.yes + outcome.no + outcome.abstain) * 2 >= len(members)
