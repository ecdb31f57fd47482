"""The usage ledger: hours held for a job or by hand, settled or released once, and the
per-quarter balances kept beside it so a budget check reads one row per quarter.

`hold_hours` and `close_reservation` run in the caller's transaction (compute admits a job
and holds its hours in one); `reserve`, `settle` and `release` are the by-hand use cases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation import rules
from commonlab.allocation.access import ALLOCATION
from commonlab.allocation.events import AllocationEvent
from commonlab.allocation.models import Allocation, Balance, Charge
from commonlab.allocation.rules import ZERO, budget_hours
from commonlab.allocation.schemas import ReservationCreate
from commonlab.db import get_or_404, lock_for_writing, utcnow
from commonlab.errors import CommonlabError, Conflict, InvalidInput, NotFound
from commonlab.policy import Action, authorize
from commonlab.policy.principal import Principal
from commonlab.regulation.service import in_force as regulation_in_force

__all__ = [
    "Hold",
    "check_holds",
    "close_reservation",
    "hold_hours",
    "quarter_balances",
    "rebuild_balances",
    "release",
    "reserve",
    "settle",
    "settled_per_class",
    "usage",
    "write_holds",
]


def usage(db: Session, allocation: Allocation) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(settled hours, open reservations) per class, this allocation and its sub-allocations."""
    rows = db.execute(
        select(Balance.accelerator, func.sum(Balance.settled), func.sum(Balance.held))
        .where(Balance.allocation_id == allocation.id)
        .group_by(Balance.accelerator)
    ).all()
    used = {cls: Decimal(s) for cls, s, _ in rows if s}
    held = {cls: Decimal(h) for cls, _, h in rows if h}
    return used, held


def quarter_balances(
    db: Session, allocation: Allocation
) -> dict[tuple[str, int], tuple[Decimal, Decimal]]:
    """(settled, held) per (class, quarter) of one allocation, from its running balances."""
    return {
        (cls, quarter): (Decimal(settled or 0), Decimal(held or 0))
        for cls, quarter, settled, held in db.execute(
            select(Balance.accelerator, Balance.quarter, Balance.settled, Balance.held).where(
                Balance.allocation_id == allocation.id
            )
        )
    }


def settled_per_class(db: Session, allocation_ids: list[int]) -> dict[int, dict[str, Decimal]]:
    """The hours each allocation has settled so far, per class."""
    drawn: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for allocation_id, cls, settled in db.execute(
        select(Balance.allocation_id, Balance.accelerator, func.sum(Balance.settled))
        .where(Balance.allocation_id.in_(allocation_ids))
        .group_by(Balance.allocation_id, Balance.accelerator)
    ):
        drawn[allocation_id][cls] = Decimal(settled)
    return drawn


def _drawn_by_quarter(db: Session, allocation: Allocation, cls: str) -> dict[int, Decimal]:
    rows = db.execute(
        select(Balance.quarter, Balance.settled + Balance.held).where(
            Balance.allocation_id == allocation.id, Balance.accelerator == cls
        )
    ).all()
    return {quarter: Decimal(drawn) for quarter, drawn in rows}


def _chain(db: Session, allocation: Allocation) -> list[Allocation]:
    """The allocation, and its parent: a sub-allocation's lines draw on both budgets."""
    if allocation.parent_id is None:
        return [allocation]
    return [allocation, db.get_one(Allocation, allocation.parent_id)]


def _move_balance(
    db: Session, allocation: Allocation, cls: str, on: date, *, settled: Decimal, held: Decimal
) -> None:
    """Add to the quarter's running sums, in one statement that also locks the row (so two
    admissions against one budget check it one after the other)."""
    quarter = rules.quarter_index(allocation.starts_on, allocation.ends_on, on)
    if quarter is None:
        raise Conflict(
            f"allocation {allocation.id} runs {allocation.starts_on} to {allocation.ends_on}"
        )
    if held < 0:
        # Closing a hold: its row exists (the hold made it). An upsert would propose a row
        # with negative `held`, which the balance's checks refuse before seeing the conflict.
        db.execute(
            update(Balance)
            .where(
                Balance.allocation_id == allocation.id,
                Balance.accelerator == cls,
                Balance.quarter == quarter,
            )
            .values(settled=Balance.settled + settled, held=Balance.held + held)
            .execution_options(synchronize_session=False)
        )
        return
    insert = sqlite_insert if db.get_bind().dialect.name == "sqlite" else postgres_insert
    statement = insert(Balance).values(
        allocation_id=allocation.id, accelerator=cls, quarter=quarter, settled=settled, held=held
    )
    db.execute(
        statement.on_conflict_do_update(
            index_elements=["allocation_id", "accelerator", "quarter"],
            set_={
                "settled": Balance.settled + statement.excluded.settled,
                "held": Balance.held + statement.excluded.held,
            },
        )
    )


def rebuild_balances(db: Session) -> int:
    """Recompute every balance from the ledger (in the caller's transaction); returns how
    many rows were written. For repairs and audits: the ledger is the truth."""
    db.execute(Balance.__table__.delete())
    allocations = {a.id: a for a in db.scalars(select(Allocation))}
    closed = {
        line.reservation_id: line
        for line in db.scalars(select(Charge).where(Charge.reservation_id.is_not(None)))
    }
    for line in db.scalars(select(Charge).where(Charge.kind == "reserve")):
        closing = closed.get(line.id)
        settled = Decimal(closing.hours) if closing and closing.kind == "settle" else ZERO
        held = ZERO if closing else Decimal(line.hours)
        for owner in _chain(db, allocations[line.allocation_id]):
            _move_balance(db, owner, line.accelerator, line.on, settled=settled, held=held)
    return db.scalar(select(func.count()).select_from(Balance)) or 0


def reserve(db: Session, actor: Principal, allocation_id: int, req: ReservationCreate) -> Charge:
    """An operator holds hours by hand (work outside the job controller); refused if it would
    overdraw (beyond the grace margin). An operator closes it with `settle` or `release`."""
    with db.begin():
        return hold_hours(
            db,
            actor,
            allocation_id,
            accelerator=req.accelerator,
            hours=req.hours,
            job=req.job,
            on=req.on,
            for_job=False,
        )


def hold_hours(
    db: Session,
    actor: Principal,
    allocation_id: int,
    *,
    accelerator: str,
    hours: Decimal,
    job: str,
    on: date | None = None,
    for_job: bool = True,
) -> Charge:
    """`reserve` inside the caller's transaction: the compute domain admits a job and holds
    its hours in one transaction, so a refused job leaves neither. A hold `for_job` closes
    only with that job's end (`close_reservation(..., job=...)`), never by hand."""
    hold = Hold(allocation_id, accelerator, hours, on or utcnow().date(), job, for_job)
    (refusal,) = check_holds(db, actor, [hold])
    if refusal is not None:
        raise refusal
    return write_holds(db, actor, [hold])[0]


@dataclass(frozen=True)
class Hold:
    """Hours to hold on an allocation, counted on day `on`, for `job` (its key)."""

    allocation_id: int
    accelerator: str
    hours: Decimal
    on: date
    job: str = ""
    for_job: bool = True


def check_holds(
    db: Session, actor: Principal, holds: Sequence[Hold]
) -> list[CommonlabError | None]:
    """Whether each hold may be taken, in order, each counting the ones before it that may
    (a group of admissions in one transaction): None, or the refusal `hold_hours` would
    raise. Locks the balance rows it reads and writes nothing else: follow it with
    `write_holds` of the holds that may, in the same transaction."""
    authorize(actor, Action.LedgerCharge, ALLOCATION)
    drawn: dict[tuple[int, str], dict[int, Decimal]] = {}
    in_force = None
    refusals: list[CommonlabError | None] = []
    for hold in holds:
        try:
            chain = _chain(db, _holdable(db, hold))
            for owner in chain:
                # Lock this quarter's row first, then read what the budget has drawn.
                if (owner.id, hold.accelerator) not in drawn:
                    _move_balance(db, owner, hold.accelerator, hold.on, settled=ZERO, held=ZERO)
                    drawn[owner.id, hold.accelerator] = _drawn_by_quarter(
                        db, owner, hold.accelerator
                    )
                in_force = in_force or regulation_in_force(db).regulation.allocation
                counted = drawn[owner.id, hold.accelerator]
                _check_left(owner, hold.accelerator, hold.hours, hold.on, counted, in_force)
        except (Conflict, InvalidInput, NotFound) as refusal:  # what hold_hours refuses
            refusals.append(refusal)
            continue
        for owner in chain:
            quarter = rules.quarter_index(owner.starts_on, owner.ends_on, hold.on)
            assert quarter is not None  # _move_balance refused it otherwise
            counted = drawn[owner.id, hold.accelerator]
            counted[quarter] = counted.get(quarter, ZERO) + hold.hours
        refusals.append(None)
    return refusals


def write_holds(db: Session, actor: Principal, holds: Sequence[Hold]) -> list[Charge]:
    """Take holds that `check_holds` allowed, in the same transaction: one balance update per
    quarter's row, one insert for the ledger lines, an entry each. The lines, in order."""
    authorize(actor, Action.LedgerCharge, ALLOCATION)
    held: dict[tuple[int, str, int], tuple[Allocation, date, Decimal]] = {}
    for hold in holds:
        for owner in _chain(db, db.get_one(Allocation, hold.allocation_id)):
            quarter = rules.quarter_index(owner.starts_on, owner.ends_on, hold.on)
            assert quarter is not None  # check_holds refused it otherwise
            key = (owner.id, hold.accelerator, quarter)
            before = held[key][2] if key in held else ZERO
            held[key] = (owner, hold.on, before + hold.hours)
    for (_, accelerator, _), (owner, on, hours) in held.items():
        _move_balance(db, owner, accelerator, on, settled=ZERO, held=hours)
    charges = [
        Charge(
            allocation_id=hold.allocation_id,
            kind="reserve",
            accelerator=hold.accelerator,
            hours=hold.hours,
            job=hold.job,
            on=hold.on,
            for_job=hold.for_job,
        )
        for hold in holds
    ]
    db.add_all(charges)
    db.flush()
    for charge in charges:
        record.append(
            db,
            AllocationEvent.HoursReserved,
            actor=actor,
            subject=f"allocation/{charge.allocation_id}",
            data={
                "ledger": charge.id,
                "class": charge.accelerator,
                "hours": str(charge.hours),
                "job": charge.job,
                # The day the hours count in (a quarter's tranche, a share report): it may
                # differ from the entry's time, e.g. work done earlier and entered by hand.
                "on": charge.on.isoformat(),
            },
        )
    return charges


def _holdable(db: Session, hold: Hold) -> Allocation:
    """The hold's allocation, if hours of its class may be held on it that day."""
    allocation = get_or_404(db, Allocation, hold.allocation_id, "allocation")
    if allocation.status != "active":
        raise Conflict(f"allocation {allocation.id} is {allocation.status}: it cannot be charged")
    budget = budget_hours(allocation.budget)
    if hold.accelerator not in budget:
        raise InvalidInput(f"allocation {allocation.id} has no {hold.accelerator} hours")
    if not allocation.starts_on <= hold.on < allocation.ends_on:
        raise Conflict(
            f"allocation {allocation.id} runs {allocation.starts_on} to {allocation.ends_on}"
        )
    return allocation


def _check_left(
    allocation: Allocation,
    cls: str,
    hours: Decimal,
    on: date,
    drawn: dict[int, Decimal],
    rules_in_force: Any,
) -> None:
    """Refuse a hold of `hours` that the quarter's tranche (with carry-over and the grace
    margin) cannot cover, given what is `drawn` per quarter."""
    budget = budget_hours(allocation.budget)[cls]
    tranches = rules.quarters(budget, allocation.starts_on, allocation.ends_on)
    left = rules.available_hours(
        tranches, drawn, on=on, carry_over_percent=rules_in_force.carry_over_percent
    )
    grace = budget * rules_in_force.grace_margin_percent / 100
    if hours > left + grace:
        raise Conflict(
            f"allocation {allocation.id} has {max(left, ZERO):.2f} {cls} hours left this quarter"
            + (f" (plus a {rules_in_force.grace_margin_percent}% grace margin)" if grace else "")
            + f"; {hours} asked"
        )


def settle(db: Session, actor: Principal, reservation_id: int, hours: Decimal) -> Charge:
    """Charge what was used (at most what was reserved) and close a reservation held by hand."""
    with db.begin():
        return close_reservation(db, actor, reservation_id, hours)


def release(db: Session, actor: Principal, reservation_id: int) -> Charge:
    """Close a reservation held by hand without charge."""
    with db.begin():
        return close_reservation(db, actor, reservation_id, None)


def close_reservation(
    db: Session,
    actor: Principal,
    reservation_id: int,
    hours: Decimal | None,
    *,
    job: str | None = None,
) -> Charge:
    """Settle `hours` against a reservation, or release it when `hours` is None, inside the
    caller's transaction. A reservation closes once: a job is charged exactly once.

    The database holds the rule, not this check: the closing line's `reservation_id` is
    unique, so of two concurrent closes one commits and the other gets 409 (its transaction
    rolls back whole). A hold a job's admission made closes only with that job (`job`, its
    key): released by hand, the job would run on with nothing to settle at its end."""
    authorize(actor, Action.LedgerCharge, ALLOCATION)
    # On SQLite: concurrent closes queue and the later ones see the first; and the savepoint
    # below opens inside a write transaction, never as one (pysqlite would commit it alone).
    lock_for_writing(db)
    held = get_or_404(db, Charge, reservation_id, "reservation")
    if held.kind != "reserve":
        raise InvalidInput(f"ledger line {held.id} is a {held.kind}, not a reservation")
    if held.for_job and job != held.job:
        raise Conflict(
            f"reservation {held.id} holds the hours of {held.job}: it closes when that job "
            f"ends; cancel the job (POST /api/v1/jobs/<id>/cancel) to end it now"
        )
    if db.scalar(select(Charge.id).where(Charge.reservation_id == held.id)) is not None:
        raise _already_closed(held)
    if hours is not None and hours > Decimal(held.hours):
        raise InvalidInput(f"{hours} hours is more than the {held.hours} reserved for {held.job}")
    kind = "release" if hours is None else "settle"
    charge = Charge(
        allocation_id=held.allocation_id,
        kind=kind,
        accelerator=held.accelerator,
        hours=hours or ZERO,
        reservation_id=held.id,
        job=held.job,
        on=held.on,
    )
    try:
        with db.begin_nested():  # the closing line first: a concurrent close fails here
            db.add(charge)
    except IntegrityError:
        raise _already_closed(held) from None
    for owner in _chain(db, db.get_one(Allocation, held.allocation_id)):
        _move_balance(
            db, owner, held.accelerator, held.on, settled=hours or ZERO, held=-Decimal(held.hours)
        )
    record.append(
        db,
        AllocationEvent.HoursSettled if kind == "settle" else AllocationEvent.HoursReleased,
        actor=actor,
        subject=f"allocation/{held.allocation_id}",
        data={
            "ledger": charge.id,
            "reservation": held.id,
            "class": held.accelerator,
            "hours": str(charge.hours),
            "job": held.job,
            "on": charge.on.isoformat(),  # the reservation's day, not the closing's
        },
    )
    return charge


def _already_closed(held: Charge) -> Conflict:
    return Conflict(
        f"reservation {held.id} is already closed: a reservation closes once and a job is "
        "charged exactly once; this request changed nothing"
    )
