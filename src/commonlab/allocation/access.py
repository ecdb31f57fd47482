"""What allocation's use cases authorize against: the allocation resource every call,
proposal and ledger action names, and who sees a project's insides."""

from __future__ import annotations

from commonlab import policy
from commonlab.policy import Action, Resource
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = ["ALLOCATION", "may_see_inside"]

ALLOCATION = Resource("allocation", "*")


def may_see_inside(actor: Principal, project: str, level: Level = Level.CL1) -> bool:
    """Whether `actor` sees a project's insides: the rules that read its jobs decide (as
    compute's job pages apply them), at the project's containment level — an uncleared member
    of a CL-3 project sees only what the public sees."""
    return policy.may_see_inside(actor, Action.JobRead, Resource.job(project, level=level))
