"""A passed council motion is the authority its effect acts under: only it may do what the
council decides, and the explanation of a denial agrees with Cedar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commonlab.policy import Action, Resource, decide
from commonlab.policy.explain import scope_denial, who_may
from commonlab.policy.levels import Level
from commonlab.policy.principal import PUBLIC, SYSTEM, Principal, Role, Scope, motion_authority

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COUNCIL = Resource("governance", "council")
CL4_DAYS = {"council_approved": True, "requested_days": 10, "max_clearance_days": 30}

# What a motion does, and the request its effect makes.
EFFECTS = [
    (Action.MemberAdmit, COUNCIL, {}),
    (Action.MemberRemove, COUNCIL, {}),
    (Action.ScaleAdopt, COUNCIL, {}),
    (Action.RegulationAdopt, COUNCIL, {}),
    (Action.AllocationApprove, Resource.allocation(3), {}),
    (Action.PartitionCertify, Resource.partition("gpu-a", Level.CL2), {}),
    (Action.WitnessRegister, Resource.record(), {}),
    (Action.ClearanceGrant, Resource.clearance(7, Level.CL4), CL4_DAYS),
]
# Only what a motion decides: the witness key and the CL-4 grant have other, older paths.
MOTION_ONLY = EFFECTS[:6]


def everyone_else() -> list[Principal]:
    admin = frozenset(Scope)
    return [
        PUBLIC,
        SYSTEM,
        Principal("p-1", person_id=1, roles=frozenset(Role), scopes=admin),
        # Calling yourself a motion does not make you one: a person is never a motion.
        Principal("motion/4", person_id=2, roles=frozenset(Role), scopes=admin, motion_id=4),
    ]


@pytest.mark.parametrize(("action", "resource", "context"), EFFECTS)
def test_a_passed_motion_may_do_what_it_decided(action, resource, context):
    decision = decide(motion_authority(12), action, resource, context, now=NOW)
    assert decision.allowed, decision.reason
    assert any("motion" in policy for policy in decision.policy_ids)


@pytest.mark.parametrize(("action", "resource", "context"), MOTION_ONLY)
def test_no_one_else_does_what_only_a_motion_decides(action, resource, context):
    for principal in everyone_else():
        decision = decide(principal, action, resource, context, now=NOW)
        assert not decision.allowed, principal
        if not principal.is_public:
            assert decision.reason == who_may(action, resource, context)
            assert "only a passed council motion" in decision.reason


def test_a_motion_does_only_what_motions_do():
    authority = motion_authority(12)
    for action, resource, context in [
        (Action.MotionClose, COUNCIL, {}),
        (Action.PersonCreate, Resource.people(), {}),
        (Action.LedgerCharge, Resource("allocation", "*"), {}),
        (Action.ClearanceGrant, Resource.clearance(7, Level.CL3), CL4_DAYS),
        (Action.ResourceRead, Resource("artifact", "a", Level.CL2), {}),
    ]:
        assert not decide(authority, action, resource, context, now=NOW).allowed, action


def test_a_motion_grants_cl4_only_within_the_regulation():
    too_long = {**CL4_DAYS, "requested_days": 31}
    decision = decide(
        motion_authority(12), Action.ClearanceGrant, Resource.clearance(7, Level.CL4), too_long
    )
    assert not decision.allowed and "regulation in force" in decision.reason


def test_a_motions_authority_carries_no_token():
    authority = motion_authority(5)
    assert authority.is_motion and not authority.is_system and not authority.is_public
    assert authority.pseudonym == "motion/5" and authority.motion_id == 5
    assert scope_denial(authority, Action.MemberAdmit) is None
