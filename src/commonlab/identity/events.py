"""The record entries the identity domain writes, one name per kind of change."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["IdentityEvent"]


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
