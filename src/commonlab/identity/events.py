"""The record entries the identity domain writes, and what each may say in clear.

People appear by pseudonym: their names and contacts enter only as commitments, except the
name of someone given a public role. Institutions, roles, tokens' reach and clearances'
levels are public; a clearance's compartments are not (they name contained programmes).
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "IdentityEvent"]


class IdentityEvent(StrEnum):
    InstitutionCreated = "identity:institution:created"
    InstitutionUpdated = "identity:institution:updated"
    PersonCreated = "identity:person:created"
    PersonUpdated = "identity:person:updated"
    RoleGranted = "identity:role:granted"
    RoleRevoked = "identity:role:revoked"
    TokenIssued = "identity:token:issued"
    TokenRevoked = "identity:token:revoked"
    ClearanceGranted = "identity:clearance:granted"
    ClearanceRevoked = "identity:clearance:revoked"


_CONTACT = ("name", "email", "orcid")

FIELDS = declare(
    IdentityEvent,
    {
        IdentityEvent.InstitutionCreated: Fields("name", "country", "kind"),
        IdentityEvent.InstitutionUpdated: Fields("changes"),
        IdentityEvent.PersonCreated: Fields(
            "institution", "roles", "bootstrap", "recovery", private=_CONTACT
        ),
        IdentityEvent.PersonUpdated: Fields("changes", private=_CONTACT),
        IdentityEvent.RoleGranted: Fields("role", "name"),
        IdentityEvent.RoleRevoked: Fields("role"),
        IdentityEvent.TokenIssued: Fields(
            "holder", "scopes", "expires_at", "job", "project", "level", "recovery"
        ),
        IdentityEvent.TokenRevoked: Fields("holder", "job"),
        IdentityEvent.ClearanceGranted: Fields(
            "holder",
            "level",
            "expires_at",
            "supersedes",
            "policy_set",
            "regulation",
            "motion",
            private=("compartments",),
        ),
        IdentityEvent.ClearanceRevoked: Fields("holder", "level"),
    },
)
