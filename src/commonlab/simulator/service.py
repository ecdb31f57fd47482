"""Attaching what-if simulations to the council's motions and reading them back. One
transaction per use case; attaching writes its record entry in it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.errors import InvalidInput, NotFound
from commonlab.governance import service as governance
from commonlab.governance.rules import MotionKind
from commonlab.identity import service as identity
from commonlab.pagination import Page, PageParams, paginate
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal, Role
from commonlab.record.canonical import canonical_json
from commonlab.regulation import service as regulation
from commonlab.regulation.document import Regulation, regulation_hash
from commonlab.simulator.events import SimulatorEvent
from commonlab.simulator.models import WhatIf
from commonlab.simulator.schemas import WhatIfCreate, WhatIfOut

if TYPE_CHECKING:
    from commonlab.governance.models import Motion

__all__ = ["MAX_DOCUMENT_BYTES", "attach_whatif", "latest_whatif", "whatifs"]

# Above what a comparison of a hundred pools takes (about 50 KiB), far below the body limit.
MAX_DOCUMENT_BYTES = 64 * 1024
GOVERNANCE = Resource("governance", "council")


def attach_whatif(db: Session, actor: Principal, motion_id: int, req: WhatIfCreate) -> WhatIfOut:
    """Store a comparison for an adopt_regulation motion, checked against the motion's own
    proposal and the adopted version it names as in force."""
    document = req.model_dump(mode="json", by_alias=True)
    body = canonical_json(document)
    with db.begin():
        authorize(actor, Action.WhatIfAttach, Resource("motion", str(motion_id)))
        if len(body) > MAX_DOCUMENT_BYTES:
            raise InvalidInput(
                f"the simulation is {len(body):,} bytes; at most {MAX_DOCUMENT_BYTES:,} are "
                "kept: send the summary `commonlab simulate --motion` sends, not the full report"
            )
        motion = governance.motion(db, motion_id)
        _check_against(db, motion, req)
        digest = hashlib.sha256(body).hexdigest()
        row = WhatIf(
            motion_id=motion.id, document=document, sha256=digest, attached_by=actor.person_id
        )
        db.add(row)
        db.flush()
        record.append(
            db,
            SimulatorEvent.WhatIfAttached,
            actor=actor,
            as_role=Role.DELEGATE if actor.has_role(Role.DELEGATE) else Role.OPERATOR,
            subject=f"motion/{motion.id}",
            data={
                "whatif": row.id,
                "sha256": digest,
                "policy": req.policy,
                "jobs": req.workload.jobs,
                "source": None if req.workload.source is None else req.workload.source.kind,
                "in_force": {
                    "version": req.in_force.regulation.version,
                    "sha256": req.in_force.regulation.sha256,
                },
                "proposed": {"sha256": req.proposed.regulation.sha256},
            },
        )
        return _views(db, [row])[0]


def whatifs(db: Session, actor: Principal, motion_id: int, page: PageParams) -> Page[WhatIfOut]:
    """A motion's simulations, oldest first."""
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        governance.motion(db, motion_id)
        query = select(WhatIf).where(WhatIf.motion_id == motion_id)
        found = paginate(db, query, WhatIf.id, page, lambda row: row)
        return Page[WhatIfOut](items=_views(db, found.items), next=found.next)


def latest_whatif(db: Session, actor: Principal, motion_id: int) -> WhatIfOut | None:
    """The newest simulation attached to a motion, for its page."""
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        row = db.scalar(
            select(WhatIf).where(WhatIf.motion_id == motion_id).order_by(WhatIf.id.desc()).limit(1)
        )
        return None if row is None else _views(db, [row])[0]


def _check_against(db: Session, motion: Motion, req: WhatIfCreate) -> None:
    if motion.kind != MotionKind.ADOPT_REGULATION:
        raise InvalidInput(
            f"motion {motion.id} is a {motion.kind} motion: only adopt_regulation motions "
            "carry a simulation (they change the shares it compares)"
        )
    proposed = regulation_hash(Regulation.model_validate(motion.payload["regulation"]))
    if req.proposed.regulation.sha256 != proposed:
        raise InvalidInput(
            f"proposed.regulation.sha256: not the regulation motion {motion.id} proposes "
            f"({proposed}): simulate the motion's own payload"
        )
    version = req.in_force.regulation.version
    if version is None:
        raise InvalidInput("in_force.regulation.version: name the adopted version in force")
    known = _version_hash(db, version)
    if known is None:
        raise InvalidInput(f"in_force.regulation.version: no regulation version {version}")
    if req.in_force.regulation.sha256 != known:
        raise InvalidInput(
            f"in_force.regulation.sha256: version {version} has sha256 {known}, not this one"
        )
    if set(req.in_force.figures.pools) != set(req.proposed.figures.pools):
        raise InvalidInput(
            "in_force.figures.pools and proposed.figures.pools must name the same pools: "
            "both sides run the same workload"
        )


def _version_hash(db: Session, version: int) -> str | None:
    try:
        return regulation.version(db, version).sha256
    except NotFound:
        return None


def _views(db: Session, rows: list[WhatIf]) -> list[WhatIfOut]:
    people = identity.people(db, {row.attached_by for row in rows})
    names = {i: person.name for i, person in people.items()}
    return [
        WhatIfOut(
            id=row.id,
            motion_id=row.motion_id,
            sha256=row.sha256,
            attached_by=names.get(row.attached_by, "?"),
            attached_at=row.attached_at,
            document=WhatIfCreate.model_validate(row.document),
        )
        for row in rows
    ]
