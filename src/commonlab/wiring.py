"""Where the domains' few upward needs are connected, in one place.

Domains form layers (docs/architecture.md): a lower one never imports a higher one. Where a
lower domain needs an answer only a higher one has — what a passing motion does to an
allocation or a partition; which projects a person belongs to when identity builds a
principal; which inputs a job declared when the registry checks what it publishes — the lower
one declares a port and this module plugs the higher one in.
`connect()` runs when a facility opens (and is idempotent); an unconnected port fails closed.
"""

from __future__ import annotations

from commonlab.allocation import motions as allocation_motions
from commonlab.allocation.service import projects_of
from commonlab.artifacts import service as artifacts
from commonlab.compute import motions as compute_motions
from commonlab.compute import service as compute
from commonlab.governance import effects
from commonlab.governance import motions as governance_motions
from commonlab.identity import projects

__all__ = ["connect"]


def connect() -> None:
    """Plug every higher domain's answer into the port of the lower one that asks."""
    _connect_motion_effects()
    projects.provide_projects(projects_of)
    artifacts.provide_job_inputs(compute.inputs_of_own_job)


def _connect_motion_effects() -> None:
    # Every motion kind's effect, from the domain that owns what it changes.
    for owner in (governance_motions, allocation_motions, compute_motions):
        for kind, effect in owner.EFFECTS.items():
            effects.register(kind, effect)
