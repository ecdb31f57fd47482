"""Who is asking: the principal every service call is made on behalf of (policy's subject).

Pure data, no database: the API builds a Principal from a token (or the public one for an
anonymous request) and hands it to services, which hand it to `policy.authorize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from commonlab.policy.levels import Clearance

__all__ = ["PUBLIC", "SYSTEM", "Principal", "Role", "Scope", "motion_authority"]


class Role(StrEnum):
    RESEARCHER = "researcher"
    PI = "pi"
    REVIEWER = "reviewer"
    DELEGATE = "delegate"
    OPERATOR = "operator"
    SAFETY_OFFICER = "safety_officer"
    AUDITOR = "auditor"


class Scope(StrEnum):
    """What a token may be used for. `admin` implies `write` implies `read`."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def covers(self, needed: Scope) -> bool:
        order = [Scope.READ, Scope.WRITE, Scope.ADMIN]
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """A person acting through a token, the anonymous public, the system itself, or a passed
    council motion taking effect (`motion_authority`)."""

    pseudonym: str
    person_id: int | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    clearance: Clearance | None = None
    institution_id: int | None = None
    projects: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None
    token_expires_at: datetime | None = None
    # Shown on the record only where the public is entitled to know who acted (public roles).
    name: str | None = None
    # The facility job whose token this is (None for people acting themselves): a job's
    # token is confined, so other domains know a read or write is a job's.
    job_id: int | None = None
    # The council motion whose effect this is: set only on a motion's authority, which
    # governance builds in-process once the vote passed; never behind a token.
    motion_id: int | None = None

    @property
    def is_public(self) -> bool:
        return self.person_id is None and self.pseudonym == "public"

    @property
    def is_system(self) -> bool:
        return self.person_id is None and self.pseudonym == "system"

    @property
    def is_motion(self) -> bool:
        """A passed council motion taking effect: the authority its changes are made under."""
        return self.person_id is None and self.motion_id is not None

    @property
    def is_job(self) -> bool:
        """Acting through a facility job's confined token: untrusted code, not the person."""
        return self.job_id is not None

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    def has_scope(self, needed: Scope) -> bool:
        return any(scope.covers(needed) for scope in self.scopes)


PUBLIC = Principal(pseudonym="public")
# Start-up and migrations act as the system: it is on the record, never behind a token.
SYSTEM = Principal(pseudonym="system")


def motion_authority(motion_id: int) -> Principal:
    """The principal a passed motion's effect acts as: the record names it `motion/<id>`, and
    only it may do what the council decides (policy/policies/*.cedar, `principal.kind`)."""
    return Principal(pseudonym=f"motion/{motion_id}", motion_id=motion_id)
