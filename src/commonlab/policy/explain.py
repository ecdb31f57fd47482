"""Why a request was denied, in words a person can act on.

Cedar decides; these pure functions only explain a denial Cedar has already made.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from commonlab.policy.actions import Action
from commonlab.policy.levels import Level, placement_denial, read_denials, write_denials
from commonlab.policy.principal import Principal, Scope
from commonlab.policy.resources import Resource

__all__ = ["lattice_denials", "scope_denial", "who_may"]

# Who may do each non-lattice action: said when no policy permitted the request.
_WHO: dict[Action, str] = {
    Action.InstitutionCreate: "only operators may create institutions",
    Action.InstitutionUpdate: "only operators may update institutions",
    Action.InstitutionRead: "institutions are public; this request was malformed",
    Action.PersonCreate: "only operators may create accounts",
    Action.PersonUpdate: "only operators, or the person themself, may update an account",
    Action.PersonRead: (
        "only the person themself, operators, auditors and safety officers may read an account"
    ),
    Action.PersonList: "only operators, auditors and safety officers may list accounts",
    Action.PersonManage: (
        "only an operator may change an account's institution or activation, or the name of "
        "a public-role holder"
    ),
    Action.RoleGrant: "only operators may grant roles",
    Action.RoleRevoke: "only operators may revoke roles",
    Action.TokenIssue: "only the person themself, or an operator, may issue their tokens",
    Action.TokenList: "only the person themself, or an operator, may list their tokens",
    Action.TokenRevoke: "only the person themself, or an operator, may revoke their tokens",
    Action.ClearanceRevoke: "only operators and safety officers may revoke clearances",
    Action.ClearanceRead: (
        "only the person themself, operators, safety officers and auditors may read a clearance"
    ),
    Action.RecordRead: "the public record is public; this request was malformed",
    Action.GovernanceRead: "the council's work is public; this request was malformed",
    Action.AllocationRead: "calls and awards are public; this request was malformed",
    Action.CallCreate: "only operators may open calls",
    Action.ProposalSubmit: "only principal investigators may submit proposals",
    Action.ProposalRead: "a proposal is read by its PI and team, its reviewers and operators",
    Action.ConflictDeclare: "only reviewers declare conflicts",
    Action.ReviewAssign: "only operators assign reviewers",
    Action.ReviewScore: "only reviewers score proposals",
    Action.ProposalReply: "only the PI replies to the reviews",
    Action.ProposalDecide: "only operators record the panel's decision",
    Action.SubAllocate: "only the PI of an allocation divides it",
    Action.LedgerCharge: "only operators and the system charge the ledger",
    Action.MembersFound: "only operators may found the council",
    Action.DelegateAppoint: "only operators may record a member state's delegates",
    Action.DelegateEnd: "only operators may record a member state's delegates",
    Action.MotionTable: "only delegates may table motions",
    Action.MotionVote: "only delegates may vote",
    Action.MotionClose: "only delegates and operators may close a vote",
    Action.MemberAdmit: "only a passed council motion admits a member state",
    Action.MemberRemove: "only a passed council motion removes a member state",
    Action.ScaleAdopt: "only a passed council motion adopts a contribution scale",
    Action.RegulationAdopt: "only a passed council motion adopts a regulation",
    Action.AllocationApprove: (
        "only a passed council motion approves an allocation above the council threshold"
    ),
    Action.PartitionCertify: "only a passed council motion certifies a partition",
    Action.WhatIfAttach: "only delegates and operators may attach a simulation to a motion",
    Action.OptOutFile: "only a signed-in person may file an opt-out (a job may not)",
    Action.OptOutRead: (
        "only the person who filed an opt-out, operators and auditors see what it names"
    ),
    Action.OptOutDecide: "only operators decide on opt-outs",
    Action.RecordCosign: "only auditors may cosign checkpoints",
    Action.WitnessRegister: "only operators may register witness keys (the council decides)",
    Action.CommitmentOpen: "only operators and auditors may open a private commitment",
    Action.FleetRead: "the fleet is public; this request was malformed",
    Action.FleetManage: "only operators manage the fleet and the executor's accounts",
    Action.JobSubmit: "only members of the project may submit its jobs",
    Action.JobRead: "a job is read by its project's members, operators and auditors",
    Action.JobCancel: "only the project's members and operators may cancel its jobs",
    Action.ArtifactsRepoCreate: (
        "a repository belongs to you or to a project you are a member of; operators create "
        "repositories for projects"
    ),
    Action.ArtifactsWrite: (
        "only the repository's owner, members of its project and operators may publish to it"
    ),
    Action.ArtifactsRead: (
        "this repository is not public: only its owner or its project's members may read it"
    ),
    Action.ArtifactsDownload: (
        "this repository is not public: only its owner or its project's members may download it"
    ),
    Action.ArtifactsCollect: "only operators may collect unreferenced objects",
}


def scope_denial(principal: Principal, action: Action) -> str | None:
    """Why this token may not be used for `action`; None when its scope covers it."""
    # The public asks without a token; the system and a motion's authority act in-process.
    if principal.is_public or principal.is_system or principal.is_motion:
        return None
    if principal.has_scope(action.scope):
        return None
    order = [Scope.READ, Scope.WRITE, Scope.ADMIN]
    held = [scope for scope in order if scope in principal.scopes]
    has = f"scope {held[-1]}" if held else "no scope"
    return f"this token has {has}; {action} needs {action.scope} — issue a token with that scope"


def who_may(action: Action, resource: Resource, context: Mapping[str, object]) -> str:
    """Who may do a non-lattice action: the line shown when no policy permitted it."""
    if action is Action.ClearanceGrant:
        level = resource.level
        if level <= Level.CL2:
            return f"only operators and safety officers may grant a {level.label} clearance"
        if level == Level.CL3:
            return "only safety officers may grant a CL-3 clearance"
        if context.get("council_approved") is not True:
            return (
                "a CL-4 clearance needs an approved council vote (council_approved) "
                "before a safety officer may grant it"
            )
        return "only safety officers may grant a CL-4 clearance"
    return _WHO.get(action, f"no policy permits {action}")


def lattice_denials(
    principal: Principal,
    action: Action,
    resource: Resource,
    context: Mapping[str, object],
    *,
    now: datetime,
) -> list[str]:
    """What the containment lattice finds wrong with a read, write or placement request."""
    if action is Action.JobPlace:
        denial = placement_denial(_level_or_none(context.get("job_level")), resource.level)
        return [denial] if denial else []
    session_grant = context.get("session_grant") is True
    if action is Action.ResourceRead:
        return read_denials(
            principal.clearance,
            resource.level,
            resource.compartments,
            now=now,
            project=resource.project,
            projects=principal.projects,
            session_grant=session_grant,
        )
    if action is Action.ResourceWrite:
        return write_denials(
            principal.clearance,
            resource.level,
            resource.compartments,
            data_level=_level_or_none(context.get("data_level")),
            now=now,
            project=resource.project,
            projects=principal.projects,
            session_grant=session_grant,
        )
    return []


def _level_or_none(value: object) -> Level | None:
    return None if value is None else Level.parse(value)
