"""What-if routes under /api/v1: attach a simulation to a motion, list a motion's
simulations. Thin: parse, call one service function, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from commonlab.bounded import Int64
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.pagination import Page
from commonlab.simulator import service
from commonlab.simulator.schemas import WhatIfCreate, WhatIfOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["simulator"])

Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]


@router.post(
    "/motions/{motion_id}/simulations",
    response_model=WhatIfOut,
    status_code=201,
    summary="Attach a what-if: the motion's regulation against the one in force",
)
def attach(
    motion_id: Id, req: WhatIfCreate, db: DbSession, principal: CurrentPrincipal
) -> WhatIfOut:
    return service.attach_whatif(db, principal, motion_id, req)


@router.get(
    "/motions/{motion_id}/simulations",
    response_model=Page[WhatIfOut],
    summary="A motion's what-if simulations, oldest first",
)
def simulations(
    motion_id: Id, db: DbSession, principal: CurrentPrincipal, page: Pagination
) -> Page[WhatIfOut]:
    return service.whatifs(db, principal, motion_id, page)
