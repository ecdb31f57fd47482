"""What allocation's use cases authorize against: the allocation resource every call,
proposal and ledger action names, and who sees a project's insides."""

from __future__ import annotations

from commonlab.policy import Action, Resource, decide
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = ["ALLOCATION", "may_see_inside"]

ALLOCATION = Resource("allocation", "*")


def may_see_inside(actor: Principal, project: str, level: Level = Level.CL1) -> bool:
    """Whether `actor` sees a project's insides: the rules that read its jobs decide (as
    compute's job pages apply them), at the project's containment level — an uncleared member
    of a CL-3 project sees only what the public sees."""
    # The same two decisions as compute's `_authorize_job` (JobRead, then ResourceRead unless
    # the system asks). Allocation may not import compute (it sits above), and a port would
    # route a pure policy question through the wiring; the one shared home is the policy
    # package, below both. Until it holds the pair, change them together.
    resource = Resource.job(project, level=level)
    return decide(actor, Action.JobRead, resource).allowed and (
        actor.is_system or decide(actor, Action.ResourceRead, resource).allowed
    )
