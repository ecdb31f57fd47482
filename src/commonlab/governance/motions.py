"""What a passing motion does to the council itself and to the domains below it: admit or
remove a member state, adopt a contribution scale or a regulation, register a witness key
(record) and grant a CL-4 clearance (identity). Each `check_*` runs when the motion is
tabled; each `apply_*` when it passes, authorized as the motion and on the record in its
name. `EFFECTS` is registered with the port by `wiring.connect()`, beside the effects the
domains above governance own (allocation/motions.py, compute/motions.py)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput, NotFound
from commonlab.governance.effects import Effect
from commonlab.governance.events import GovernanceEvent
from commonlab.governance.models import MemberState, ScaleVersion
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import (
    AdmitMember,
    AdoptRegulation,
    GrantCl4,
    RegisterWitness,
    RemoveMember,
    SetScale,
)
from commonlab.governance.service import GOVERNANCE, active_codes, current_shares
from commonlab.identity import service as identity
from commonlab.identity.schemas import ClearanceCreate
from commonlab.policy import Action, authorize
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal
from commonlab.record.witnesses import check_witness_key, register_witness_in
from commonlab.regulation import service as regulation
from commonlab.regulation.document import ContributionScale

__all__ = ["EFFECTS"]


def _check_scale(db: Session, shares: dict[str, Decimal], members: set[str]) -> None:
    ceiling = regulation.in_force(db).regulation.contribution_ceiling_percent
    try:
        ContributionScale(shares=shares).check(ceiling=ceiling, members=members)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _adopt_scale(db: Session, shares: dict[str, Decimal], motion: Principal) -> None:
    authorize(motion, Action.ScaleAdopt, GOVERNANCE)
    row = ScaleVersion(
        shares={c: str(v) for c, v in sorted(shares.items())}, motion_id=motion.motion_id
    )
    db.add(row)
    db.flush()
    record.append(
        db,
        GovernanceEvent.ScaleAdopted,
        actor=motion,
        subject=f"scale/{row.id}",
        data={"shares": row.shares, "motion": motion.motion_id},
    )


# Admit ---------------------------------------------------------------------------------------


def check_admit(db: Session, p: AdmitMember) -> None:
    if db.scalar(select(MemberState).where(MemberState.code == p.code)) is not None:
        raise Conflict(f"{p.code} is, or was, a member state; re-admission is not supported yet")
    if p.scale is not None:
        _check_scale(db, p.scale, active_codes(db) | {p.code})


def apply_admit(db: Session, motion: Principal, p: AdmitMember) -> None:
    check_admit(db, p)
    authorize(motion, Action.MemberAdmit, GOVERNANCE)
    member = MemberState(code=p.code, name=p.name, admitted_by_motion=motion.motion_id)
    db.add(member)
    db.flush()
    record.append(
        db,
        GovernanceEvent.MemberAdmitted,
        actor=motion,
        subject=f"member/{p.code}",
        data={"name": p.name, "motion": motion.motion_id},
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


def apply_remove(db: Session, motion: Principal, p: RemoveMember) -> None:
    check_remove(db, p)
    authorize(motion, Action.MemberRemove, GOVERNANCE)
    member = db.scalar(select(MemberState).where(MemberState.code == p.code))
    assert member is not None
    member.removed_at = utcnow()
    for delegate in member.delegates:
        if delegate.ended_at is None:
            delegate.ended_at = member.removed_at
    record.append(
        db,
        GovernanceEvent.MemberRemoved,
        actor=motion,
        subject=f"member/{p.code}",
        data={"motion": motion.motion_id},
    )
    if p.scale is not None:
        _adopt_scale(db, p.scale, motion)


# Scale ---------------------------------------------------------------------------------------


def check_scale(db: Session, p: SetScale) -> None:
    _check_scale(db, p.shares, active_codes(db))


def apply_scale(db: Session, motion: Principal, p: SetScale) -> None:
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


def apply_regulation(db: Session, motion: Principal, p: AdoptRegulation) -> None:
    check_regulation(db, p)
    authorize(motion, Action.RegulationAdopt, GOVERNANCE)
    assert motion.motion_id is not None
    adopted = regulation.adopt(db, p.regulation, motion_id=motion.motion_id)
    record.append(
        db,
        GovernanceEvent.RegulationAdopted,
        actor=motion,
        subject=f"regulation/{adopted.version}",
        data={"version": adopted.version, "sha256": adopted.sha256, "motion": motion.motion_id},
    )


# Witness -------------------------------------------------------------------------------------


def check_witness(db: Session, p: RegisterWitness) -> None:
    check_witness_key(name=p.name, verifier_key=p.verifier_key)


def apply_witness(db: Session, motion: Principal, p: RegisterWitness) -> None:
    # record/witnesses authorizes the motion and writes the entry in its name.
    register_witness_in(
        db, motion, name=p.name, verifier_key=p.verifier_key, motion_id=motion.motion_id
    )


# CL-4 clearance ------------------------------------------------------------------------------


def check_cl4(db: Session, p: GrantCl4) -> None:
    identity.check_clearance_term(db, p.person_id, Level.CL4, p.expires_at)


def apply_cl4(db: Session, motion: Principal, p: GrantCl4) -> None:
    check_cl4(db, p)
    # identity authorizes the motion (only a passed motion grants CL-4) and records it.
    identity.grant_clearance_in(
        db,
        motion,
        p.person_id,
        ClearanceCreate(level=4, compartments=p.compartments, expires_at=p.expires_at),
    )


EFFECTS: dict[MotionKind, Effect] = {
    MotionKind.ADMIT_MEMBER: Effect(check_admit, apply_admit),
    MotionKind.REMOVE_MEMBER: Effect(check_remove, apply_remove),
    MotionKind.SET_CONTRIBUTION_SCALE: Effect(check_scale, apply_scale),
    MotionKind.ADOPT_REGULATION: Effect(check_regulation, apply_regulation),
    MotionKind.REGISTER_WITNESS: Effect(check_witness, apply_witness),
    MotionKind.GRANT_CL4_CLEARANCE: Effect(check_cl4, apply_cl4),
}
