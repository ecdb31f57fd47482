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
    DeviceGrantApproved = "identity:device_grant:approved"
    PersonLinked = "identity:person:linked"
    AffiliationMapped = "identity:affiliation:mapped"


_CONTACT = ("name", "email", "orcid")

FIELDS = declare(
    IdentityEvent,
    {
        IdentityEvent.InstitutionCreated: Fields(
            "name", "country", "kind", about="an institution registered: its name, country and kind"
        ),
        IdentityEvent.InstitutionUpdated: Fields(
            "changes", about="an institution's name, country or kind changed: the new values"
        ),
        IdentityEvent.PersonCreated: Fields(
            "institution",
            "roles",
            "bootstrap",
            "recovery",
            private=_CONTACT,
            about="a person registered by pseudonym: institution and roles, contacts committed",
        ),
        IdentityEvent.PersonUpdated: Fields(
            "changes",
            private=_CONTACT,
            about="a person's details changed: a public role's name in clear, contacts committed",
        ),
        IdentityEvent.RoleGranted: Fields(
            "role", "name", about="a role given to a person (a public role with their name)"
        ),
        IdentityEvent.RoleRevoked: Fields("role", about="a role taken from a person"),
        IdentityEvent.TokenIssued: Fields(
            "holder",
            "scopes",
            "expires_at",
            "job",
            "project",
            "level",
            "recovery",
            about="a token issued: whose, scopes, expiry, and for a job its project and level",
        ),
        IdentityEvent.TokenRevoked: Fields(
            "holder", "job", about="a token revoked (a job's token when the job ends)"
        ),
        IdentityEvent.ClearanceGranted: Fields(
            "holder",
            "level",
            "expires_at",
            "supersedes",
            "policy_set",
            "regulation",
            "motion",
            private=("compartments",),
            about="a clearance granted up to a level, under the policy set and regulation in force",
        ),
        IdentityEvent.ClearanceRevoked: Fields(
            "holder", "level", about="a clearance withdrawn before it expired"
        ),
        IdentityEvent.DeviceGrantApproved: Fields(
            "holder",
            "client",
            "scopes",
            about="a person approved a device's sign-in (`commonlab login`): the client, and "
            "the scopes of the one token it may fetch",
        ),
        IdentityEvent.PersonLinked: Fields(
            "provider",
            "issuer",
            private=("subject",),
            about="a person's account linked to their identity at an OpenID Connect provider: "
            "the issuer in clear, the provider's subject committed",
        ),
        IdentityEvent.AffiliationMapped: Fields(
            "affiliation",
            "institution",
            "placed",
            about="an operator's rule: people whose provider asserts this affiliation belong "
            "to this institution (how many waiting were placed; each also by person:updated)",
        ),
    },
)
