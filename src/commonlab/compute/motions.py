"""What a passed `certify_partition` motion does: a partition's certification is raised or
lowered. Compute owns the fleet, so it owns the effect; `wiring.connect()` registers
`EFFECTS` with governance's port."""

from __future__ import annotations

from sqlalchemy.orm import Session

from commonlab.compute.service import certify_partition, check_certification
from commonlab.governance.effects import Effect
from commonlab.governance.rules import MotionKind
from commonlab.governance.schemas import CertifyPartition
from commonlab.policy.principal import Principal

__all__ = ["EFFECTS"]


def check(db: Session, p: CertifyPartition) -> None:
    check_certification(db, p.partition, p.level)


def apply(db: Session, motion: Principal, p: CertifyPartition) -> None:
    certify_partition(db, motion, p.partition, p.level)


EFFECTS = {MotionKind.CERTIFY_PARTITION: Effect(check, apply)}
