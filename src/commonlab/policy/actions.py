"""The names of everything a principal can ask to do, and the token scope each one needs.

An `Action` value is also its Cedar action id (`Action::"identity:person:create"`).
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.policy.principal import Scope

__all__ = ["Action"]


class Action(StrEnum):
    """An action a principal asks `policy.authorize` about; `.scope` is the token scope it needs."""

    # identity/
    InstitutionCreate = "identity:institution:create"
    InstitutionUpdate = "identity:institution:update"
    InstitutionRead = "identity:institution:read"
    PersonCreate = "identity:person:create"
    PersonUpdate = "identity:person:update"
    PersonRead = "identity:person:read"
    PersonList = "identity:person:list"
    # What others rely on: an account's institution, whether it is active, a public name.
    PersonManage = "identity:person:manage"
    RoleGrant = "identity:role:grant"
    RoleRevoke = "identity:role:revoke"
    TokenIssue = "identity:token:issue"
    TokenList = "identity:token:list"
    TokenRevoke = "identity:token:revoke"
    ClearanceGrant = "identity:clearance:grant"
    ClearanceRevoke = "identity:clearance:revoke"
    ClearanceRead = "identity:clearance:read"
    # record/
    RecordRead = "record:read"
    RecordCosign = "record:cosign"
    WitnessRegister = "record:witness:register"
    CommitmentOpen = "record:commitment:open"
    # governance/
    GovernanceRead = "governance:read"
    MembersFound = "governance:members:found"
    DelegateAppoint = "governance:delegate:appoint"
    DelegateEnd = "governance:delegate:end"
    MotionTable = "governance:motion:table"
    MotionVote = "governance:motion:vote"
    MotionClose = "governance:motion:close"
    # what a passed motion does to the council itself (its authority is the motion)
    MemberAdmit = "governance:member:admit"
    MemberRemove = "governance:member:remove"
    ScaleAdopt = "governance:scale:adopt"
    RegulationAdopt = "governance:regulation:adopt"
    # simulator/
    WhatIfAttach = "simulator:whatif:attach"
    # allocation/
    AllocationRead = "allocation:read"
    CallCreate = "allocation:call:create"
    ProposalSubmit = "allocation:proposal:submit"
    ProposalRead = "allocation:proposal:read"
    ConflictDeclare = "allocation:conflict:declare"
    ReviewAssign = "allocation:review:assign"
    ReviewScore = "allocation:review:score"
    ProposalReply = "allocation:proposal:reply"
    ProposalDecide = "allocation:proposal:decide"
    SubAllocate = "allocation:sub_allocate"
    LedgerCharge = "allocation:ledger:charge"
    AllocationApprove = "allocation:approve"  # above the council threshold: a motion's effect
    # the containment lattice
    ResourceRead = "resource:read"
    ResourceWrite = "resource:write"
    JobPlace = "compute:job:place"
    # compute/
    FleetRead = "compute:fleet:read"
    FleetManage = "compute:fleet:manage"
    JobSubmit = "compute:job:submit"
    JobRead = "compute:job:read"
    JobCancel = "compute:job:cancel"
    PartitionCertify = "compute:partition:certify"  # a motion's effect
    # every job of a window, for what-ifs (tenants opaque, contained work by pool only)
    WorkloadExport = "compute:workload:export"
    # the Prometheus figures at /metrics, for a scraper outside metrics_networks
    MetricsRead = "compute:metrics:read"
    # artifacts/
    ArtifactsRepoCreate = "artifacts:repo:create"
    ArtifactsWrite = "artifacts:write"
    ArtifactsRead = "artifacts:read"
    ArtifactsDownload = "artifacts:download"
    ArtifactsCollect = "artifacts:collect"
    # datasearch/
    OptOutFile = "datasearch:optout:file"
    OptOutRead = "datasearch:optout:read"  # what a filed opt-out names, and who filed it
    OptOutDecide = "datasearch:optout:decide"

    @property
    def scope(self) -> Scope:
        """The least token scope this action needs (`admin` covers `write` covers `read`)."""
        return _SCOPES[self]

    @property
    def domain(self) -> str:
        """The part before the first colon: `identity`, `record`, `resource`, `compute`."""
        return self.value.partition(":")[0]


_SCOPES: dict[Action, Scope] = {
    Action.InstitutionCreate: Scope.ADMIN,
    Action.InstitutionUpdate: Scope.ADMIN,
    Action.InstitutionRead: Scope.READ,
    Action.PersonCreate: Scope.ADMIN,
    Action.PersonUpdate: Scope.WRITE,
    Action.PersonRead: Scope.READ,
    Action.PersonList: Scope.READ,
    Action.PersonManage: Scope.WRITE,
    Action.RoleGrant: Scope.ADMIN,
    Action.RoleRevoke: Scope.ADMIN,
    Action.TokenIssue: Scope.WRITE,
    Action.TokenList: Scope.WRITE,
    Action.TokenRevoke: Scope.WRITE,
    Action.ClearanceGrant: Scope.ADMIN,
    Action.ClearanceRevoke: Scope.ADMIN,
    Action.ClearanceRead: Scope.READ,
    Action.RecordRead: Scope.READ,
    Action.RecordCosign: Scope.WRITE,
    Action.WitnessRegister: Scope.ADMIN,
    Action.CommitmentOpen: Scope.READ,
    Action.GovernanceRead: Scope.READ,
    Action.MembersFound: Scope.ADMIN,
    Action.DelegateAppoint: Scope.ADMIN,
    Action.DelegateEnd: Scope.ADMIN,
    Action.MotionTable: Scope.WRITE,
    Action.MotionVote: Scope.WRITE,
    Action.MotionClose: Scope.WRITE,
    Action.MemberAdmit: Scope.ADMIN,
    Action.MemberRemove: Scope.ADMIN,
    Action.ScaleAdopt: Scope.ADMIN,
    Action.RegulationAdopt: Scope.ADMIN,
    Action.WhatIfAttach: Scope.WRITE,
    Action.AllocationRead: Scope.READ,
    Action.CallCreate: Scope.ADMIN,
    Action.ProposalSubmit: Scope.WRITE,
    Action.ProposalRead: Scope.READ,
    Action.ConflictDeclare: Scope.WRITE,
    Action.ReviewAssign: Scope.ADMIN,
    Action.ReviewScore: Scope.WRITE,
    Action.ProposalReply: Scope.WRITE,
    Action.ProposalDecide: Scope.ADMIN,
    Action.SubAllocate: Scope.WRITE,
    Action.LedgerCharge: Scope.ADMIN,
    Action.AllocationApprove: Scope.ADMIN,
    Action.ResourceRead: Scope.READ,
    Action.ResourceWrite: Scope.WRITE,
    Action.JobPlace: Scope.WRITE,
    Action.FleetRead: Scope.READ,
    Action.FleetManage: Scope.ADMIN,
    Action.JobSubmit: Scope.WRITE,
    Action.JobRead: Scope.READ,
    Action.JobCancel: Scope.WRITE,
    Action.PartitionCertify: Scope.ADMIN,
    Action.WorkloadExport: Scope.READ,
    Action.MetricsRead: Scope.READ,
    Action.ArtifactsRepoCreate: Scope.WRITE,
    Action.ArtifactsWrite: Scope.WRITE,
    Action.ArtifactsRead: Scope.READ,
    Action.ArtifactsDownload: Scope.READ,
    Action.ArtifactsCollect: Scope.ADMIN,
    Action.OptOutFile: Scope.WRITE,
    Action.OptOutRead: Scope.READ,
    Action.OptOutDecide: Scope.ADMIN,
}

# A new Action without a scope would fail at its first request; fail at import instead.
if _unscoped := set(Action) - set(_SCOPES):
    raise RuntimeError(f"actions without a token scope: {sorted(_unscoped)}")
