"""The voting rules, pure: who may vote, and whether a motion passed.

No database, no time source: the service hands in the member states, the contribution
scale and the votes, and gets an Outcome it records as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

__all__ = ["Choice", "MotionKind", "Outcome", "VotingRule", "decide", "rule_for"]


class Choice(StrEnum):
    YES = "yes"
    NO = "no"
    ABSTAIN = "abstain"


class VotingRule(StrEnum):
    """How a motion passes. Every rule also needs its quorum of participating states."""

    SIMPLE_MAJORITY = "simple"  # more yes than no among states voting yes or no
    TWO_THIRDS = "two_thirds"  # at least 2/3 of the yes-or-no votes are yes
    DOUBLE_MAJORITY = "double"  # yes from a majority of all members holding >50% of contributions


class MotionKind(StrEnum):
    ADOPT_REGULATION = "adopt_regulation"
    ADMIT_MEMBER = "admit_member"
    REMOVE_MEMBER = "remove_member"
    SET_CONTRIBUTION_SCALE = "set_contribution_scale"
    APPROVE_ALLOCATION = "approve_allocation"
    CERTIFY_PARTITION = "certify_partition"
    REGISTER_WITNESS = "register_witness"
    GRANT_CL4_CLEARANCE = "grant_cl4_clearance"


_RULES: dict[MotionKind, VotingRule] = {
    MotionKind.ADOPT_REGULATION: VotingRule.DOUBLE_MAJORITY,
    MotionKind.ADMIT_MEMBER: VotingRule.DOUBLE_MAJORITY,
    MotionKind.REMOVE_MEMBER: VotingRule.TWO_THIRDS,
    MotionKind.SET_CONTRIBUTION_SCALE: VotingRule.DOUBLE_MAJORITY,
    MotionKind.APPROVE_ALLOCATION: VotingRule.SIMPLE_MAJORITY,
    MotionKind.CERTIFY_PARTITION: VotingRule.SIMPLE_MAJORITY,
    MotionKind.REGISTER_WITNESS: VotingRule.SIMPLE_MAJORITY,
    MotionKind.GRANT_CL4_CLEARANCE: VotingRule.TWO_THIRDS,
}

# Share of all member states that must take part (yes, no or abstain) for a vote to count.
QUORUM: dict[VotingRule, Fraction] = {
    VotingRule.SIMPLE_MAJORITY: Fraction(1, 2),
    VotingRule.TWO_THIRDS: Fraction(2, 3),
    VotingRule.DOUBLE_MAJORITY: Fraction(1, 2),
}


def rule_for(kind: MotionKind) -> VotingRule:
    return _RULES[kind]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    reason: str
    members: int
    yes: int
    no: int
    abstain: int
    absent: int
    yes_contribution: Decimal

    def as_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "members": self.members,
            "yes": self.yes,
            "no": self.no,
            "abstain": self.abstain,
            "absent": self.absent,
            "yes_contribution_percent": str(self.yes_contribution),
        }


def decide(
    rule: VotingRule,
    *,
    votes: Mapping[str, Choice],
    members: frozenset[str],
    contributions: Mapping[str, Decimal],
) -> Outcome:
    """The outcome of a closed vote. `votes` maps member state code → its final choice.

    Votes from states that are not members when the vote closes are ignored; a member that
    did not vote is absent. Contributions are percentages of the adopted scale.
    """
    counted = {code: choice for code, choice in votes.items() if code in members}
    yes = sum(1 for c in counted.values() if c == Choice.YES)
    no = sum(1 for c in counted.values() if c == Choice.NO)
    abstain = sum(1 for c in counted.values() if c == Choice.ABSTAIN)
    absent = len(members) - len(counted)
    yes_weight = sum(
        (contributions.get(code, Decimal(0)) for code, c in counted.items() if c == Choice.YES),
        Decimal(0),
    )
    total_weight = sum((contributions.get(code, Decimal(0)) for code in members), Decimal(0))

    def outcome(passed: bool, reason: str) -> Outcome:
        return Outcome(passed, reason, len(members), yes, no, abstain, absent, yes_weight)

    if not members:
        return outcome(False, "there are no member states to vote")
    participating = Fraction(len(counted), len(members))
    if participating < QUORUM[rule]:
        return outcome(
            False,
            f"no quorum: {len(counted)} of {len(members)} states took part, {QUORUM[rule]} needed",
        )
    if rule is VotingRule.SIMPLE_MAJORITY:
        if yes > no:
            return outcome(True, f"simple majority: {yes} yes to {no} no")
        return outcome(False, f"no simple majority: {yes} yes to {no} no")
    if rule is VotingRule.TWO_THIRDS:
        if yes + no > 0 and Fraction(yes, yes + no) >= Fraction(2, 3):
            return outcome(True, f"two-thirds majority: {yes} yes to {no} no")
        return outcome(False, f"short of two thirds: {yes} yes to {no} no")
    majority_of_states = Fraction(yes, len(members)) > Fraction(1, 2)
    majority_of_weight = total_weight > 0 and yes_weight * 2 > total_weight
    if majority_of_states and majority_of_weight:
        return outcome(
            True, f"double majority: {yes} of {len(members)} states, {yes_weight}% of contributions"
        )
    missing = []
    if not majority_of_states:
        missing.append(f"{yes} of {len(members)} states is not a majority")
    if not majority_of_weight:
        missing.append(f"{yes_weight}% of contributions is not a majority")
    return outcome(False, "no double majority: " + "; ".join(missing))
