"""What a passing motion does: one function per motion kind, each run in the transaction
that records the result. `check_*` validates a payload when the motion is tabled (so a
motion that could never take effect is refused up front); `apply_*` runs when it passes and
checks again, since the facility may have changed while the vote was open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.governance.events import GovernanceEvent
from commonlab.governance.in_force import regulation_in_force
from commonlab.governance.models import MemberState, Motion, RegulationVersion, ScaleVersion
from commonlab.governance.regulation import ContributionScale, regulation_hash
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import (
    PAYLOADS,
    AdmitMember,
    AdoptRegulation,
    ApproveAllocation,
    CertifyPartition,
    GrantCl4,
    RegisterWitness,
    RemoveMember,
    SetScale,
)
from commonlab.policy.levels import Level
from commonlab.policy.principal import SYSTEM

__all__ = ["EFFECTS", "Effect", "active_codes", "current_shares", "parse_payload"]


def parse_payload(kind: MotionKind, payload: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    model = PAYLOADS.get(kind)
    if model is None:
        raise InvalidInput(f"{kind} motions arrive with the compute domain: not yet")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"payload.{where}: {message}") from None


def active_codes(db: Session) -> set[str]:
    return set(db.scalars(select(MemberState.code).where(MemberState.removed_at.is_(None))))


def current_shares(db: Session) -> dict[str, Decimal]:
    row = db.scalar(select(ScaleVersion).order_by(ScaleVersion.id.desc()).limit(1))
    return {} if row is None else {code: Decimal(v) for code, v in row.shares.items()}


def _check_scale(db: Session, shares: dict[str, Decimal], members: set[str]) -> None:
    ceiling = regulation_in_force(db).regulation.contribution_ceiling_percent
    try:
        ContributionScale(shares=shares).check(ceiling=ceiling, members=members)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _adopt_scale(db: Session, shares: dict[str, Decimal], motion: Motion) -> None:
    row = ScaleVersion(shares={c: str(v) for c, v in sorted(shares.items())}, motion_id=motion.id)
    db.add(row)
    db.flush()
    record.append(
        db,
        GovernanceEvent.ScaleAdopted,
        actor=SYSTEM,
        subject=f"scale/{row.id}",
        data={"shares": row.shares, "motion": motion.id},
    )


# Admit ---------------------------------------------------------------------------------------


def check_admit(db: Session, p: AdmitMember) -> None:
    if db.scalar(select(MemberState).where(MemberState.code == p.code)) is not None:
        raise Conflict(f"{p.code} is, or was, a member state; re-admission is not supported yet")
    if p.scale is not None:
        _check_scale(db, p.scale, active_codes(db) | {p.code})


def apply_admit(db: Session, motion: Motion, p: AdmitMember) -> None:
    check_admit(db, p)
    member = MemberState(code=p.code, name=p.name, admitted_by_motion=motion.id)
    db.add(member)
    db.flush()
    record.append(
        db,
        GovernanceEvent.MemberAdmitted,
        actor=SYSTEM,
        subject=f"member/{p.code}",
        data={"name": p.name, "motion": motion.id},
    )
    if p.scale is not None:
        _adopt_scale(db, p.scale, motion)


# Remove --------------------------------------------------------------------------------------


def check_remove(db: Session, p: RemoveMember) -> None:
    if p.code not in active_codes(db):
        raise NotFound(f"{p.code} is not a member state")
    if p.scale is not None:
        _check_scale(db, p.scale, active_codes(db) - {p.code})
    elif current_shares(db).get(p.code, Decimal(0)) > 0:
        raise InvalidInput(
            f"{p.code} holds a contribution share: give the scale without it (payload.scale)"
        )


def apply_remove(db: Session, motion: Motion, p: RemoveMember) -> None:
    check_remove(db, p)
    member = db.scalar(select(MemberState).where(MemberState.code == p.code))
    assert member is not None
    member.removed_at = utcnow()
    for delegate in member.delegates:
        if delegate.ended_at is None:
            delegate.ended_at = member.removed_at
    record.append(
        db,
        GovernanceEvent.MemberRemoved,
        actor=SYSTEM,
        subject=f"member/{p.code}",
        data={"motion": motion.id},
    )
    if p.scale is not None:
        _adopt_scale(db, p.scale, motion)


# Scale ---------------------------------------------------------------------------------------


def check_scale(db: Session, p: SetScale) -> None:
    _check_scale(db, p.shares, active_codes(db))


def apply_scale(db: Session, motion: Motion, p: SetScale) -> None:
    check_scale(db, p)
    _adopt_scale(db, p.shares, motion)


# Regulation ----------------------------------------------------------------------------------


def check_regulation(db: Session, p: AdoptRegulation) -> None:
    shares = current_shares(db)
    ceiling = p.regulation.contribution_ceiling_percent
    over = sorted(code for code, share in shares.items() if share > ceiling)
    if over:
        raise InvalidInput(
            f"the adopted scale gives {', '.join(over)} more than the proposed ceiling of "
            f"{ceiling}%: change the scale first"
        )


def apply_regulation(db: Session, motion: Motion, p: AdoptRegulation) -> None:
    check_regulation(db, p)
    last = db.scalar(select(func.max(RegulationVersion.version))) or 0
    document = p.regulation.model_dump(mode="json")
    row = RegulationVersion(
        version=last + 1,
        document=document,
        sha256=regulation_hash(p.regulation),
        motion_id=motion.id,
    )
    db.add(row)
    db.flush()
    record.append(
        db,
        GovernanceEvent.RegulationAdopted,
        actor=SYSTEM,
        subject=f"regulation/{row.version}",
        data={"version": row.version, "sha256": row.sha256, "motion": motion.id},
    )


# Witness -------------------------------------------------------------------------------------


def check_witness(db: Session, p: RegisterWitness) -> None:
    from commonlab.record.witnesses import check_witness_key

    check_witness_key(name=p.name, verifier_key=p.verifier_key)


def apply_witness(db: Session, motion: Motion, p: RegisterWitness) -> None:
    from commonlab.record.witnesses import register_witness_in

    register_witness_in(db, SYSTEM, name=p.name, verifier_key=p.verifier_key, motion_id=motion.id)


# CL-4 clearance ------------------------------------------------------------------------------


def check_cl4(db: Session, p: GrantCl4) -> None:
    from commonlab.identity.models import Person

    if db.get(Person, p.person_id) is None:
        raise NotFound(f"no person with id {p.person_id}")
    limit = regulation_in_force(db).regulation.containment.for_level(Level.CL4).max_clearance_days
    if p.expires_at - utcnow() > timedelta(days=limit):
        raise InvalidInput(f"a CL-4 clearance may last at most {limit} days under the regulation")


def apply_cl4(db: Session, motion: Motion, p: GrantCl4) -> None:
    from commonlab.identity.schemas import ClearanceCreate
    from commonlab.identity.service import grant_clearance_in

    check_cl4(db, p)
    grant_clearance_in(
        db,
        SYSTEM,
        p.person_id,
        ClearanceCreate(level=4, compartments=p.compartments, expires_at=p.expires_at),
        council_approved=True,
        motion_id=motion.id,
    )


# Allocation above the council threshold -------------------------------------------------------


def check_allocation(db: Session, p: ApproveAllocation) -> None:
    from commonlab.allocation.service import check_awaiting_council

    check_awaiting_council(db, p.allocation_id)


def apply_allocation(db: Session, motion: Motion, p: ApproveAllocation) -> None:
    from commonlab.allocation.service import activate_allocation

    activate_allocation(db, p.allocation_id, motion_id=motion.id)


# Partition certification -----------------------------------------------------------------------


def check_certification(db: Session, p: CertifyPartition) -> None:
    from commonlab.compute.service import check_certification

    check_certification(db, p.partition, p.level)


def apply_certification(db: Session, motion: Motion, p: CertifyPartition) -> None:
    from commonlab.compute.service import certify_partition

    certify_partition(db, p.partition, p.level, motion_id=motion.id)


@dataclass(frozen=True)
class Effect:
    check: Callable[[Session, Any], None]
    apply: Callable[[Session, Motion, Any], None]


EFFECTS: dict[MotionKind, Effect] = {
    MotionKind.ADMIT_MEMBER: Effect(check_admit, apply_admit),
    MotionKind.REMOVE_MEMBER: Effect(check_remove, apply_remove),
    MotionKind.SET_CONTRIBUTION_SCALE: Effect(check_scale, apply_scale),
    MotionKind.ADOPT_REGULATION: Effect(check_regulation, apply_regulation),
    MotionKind.REGISTER_WITNESS: Effect(check_witness, apply_witness),
    MotionKind.GRANT_CL4_CLEARANCE: Effect(check_cl4, apply_cl4),
    MotionKind.APPROVE_ALLOCATION: Effect(check_allocation, apply_allocation),
    MotionKind.CERTIFY_PARTITION: Effect(check_certification, apply_certification),
}
