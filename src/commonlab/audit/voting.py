"""The council's voting rules, as the audit reads them from docs/architecture.md: which rule
decides each kind of motion, each rule's quorum, and the count of a closed vote. Written for
the audit, sharing no code with the facility's own (governance/rules.py), so that a motion
the facility recorded as passed is passed by a second reading of the rules too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

__all__ = ["KIND_RULES", "QUORUM", "Tally", "tally"]

# The voting rules as docs/architecture.md states them: the share of all member states that
# must take part (yes, no or abstain) for a vote to count, per rule.
QUORUM: dict[str, Fraction] = {
    "simple": Fraction(1, 2),
    "two_thirds": Fraction(2, 3),
    "double": Fraction(1, 2),
}

# Which rule each motion kind is decided by (docs/architecture.md, "Governance").
KIND_RULES: dict[str, str] = {
    "adopt_regulation": "double",
    "admit_member": "double",
    "remove_member": "two_thirds",
    "set_contribution_scale": "double",
    "approve_allocation": "simple",
    "certify_partition": "simple",
    "register_witness": "simple",
    "grant_cl4_clearance": "two_thirds",
}


@dataclass(frozen=True)
class Tally:
    """A closed vote, counted by the audit."""

    passed: bool
    reason: str
    members: int
    yes: int
    no: int
    abstain: int
    absent: int
    yes_contribution: Decimal


def tally(
    rule: str,
    *,
    votes: Mapping[str, str],
    members: frozenset[str],
    weights: Mapping[str, Decimal],
) -> Tally:
    """Count a closed vote under `rule` ("simple", "two_thirds" or "double").

    `votes` is each state's last choice ("yes", "no", "abstain"); only states that are members
    when the vote closes count, and a member that did not vote is absent. Abstentions count
    towards the quorum only. `weights` is the contribution scale in force, in percent.
    Raises ValueError for a rule the audit does not know.
    """
    if rule not in QUORUM:
        raise ValueError(f"no voting rule {rule!r}")
    counted = {code: choice for code, choice in votes.items() if code in members}
    yes = sum(1 for choice in counted.values() if choice == "yes")
    no = sum(1 for choice in counted.values() if choice == "no")
    abstain = sum(1 for choice in counted.values() if choice == "abstain")
    yes_weight = sum(
        (weights.get(code, Decimal(0)) for code, c in counted.items() if c == "yes"), Decimal(0)
    )
    all_weight = sum((weights.get(code, Decimal(0)) for code in members), Decimal(0))

    def result(passed: bool, reason: str) -> Tally:
        absent = len(members) - len(counted)
        return Tally(passed, reason, len(members), yes, no, abstain, absent, yes_weight)

    if not members:
        return result(False, "no member states")
    # Quorum exactly met is met: only fewer than the share fails.
    if Fraction(len(counted), len(members)) < QUORUM[rule]:
        return result(False, "no quorum")
    if rule == "simple":
        return result(yes > no, f"{yes} yes to {no} no")
    if rule == "two_thirds":
        return result(yes + no > 0 and 3 * yes >= 2 * (yes + no), f"{yes} yes to {no} no")
    states = 2 * yes > len(members)
    weight = all_weight > 0 and 2 * yes_weight > all_weight
    return result(states and weight, f"{yes} of {len(members)} states, {yes_weight}%")
