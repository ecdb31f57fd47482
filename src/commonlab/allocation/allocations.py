"""Allocations: a budget of hours per class over a period, awarded to a project. Council
approval, sub-allocations, members, which allocation pays for a job, and the project as its
people see it (quarterly tranches, hours drawn). The ledger that charges them is `ledger`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation import ledger, rules
from commonlab.allocation.access import ALLOCATION, may_see_inside
from commonlab.allocation.events import AllocationEvent
from commonlab.allocation.models import Allocation, ProjectMember, Proposal
from commonlab.allocation.rules import ZERO, budget_hours, budget_text
from commonlab.allocation.schemas import SubAllocationCreate
from commonlab.db import get_or_404
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound
from commonlab.identity import service as identity
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal
from commonlab.regulation.service import in_force as regulation_in_force

if TYPE_CHECKING:
    from commonlab.identity.models import Person

__all__ = [
    "MyProject",
    "ProjectPage",
    "Tranche",
    "activate_allocation",
    "active_allocations",
    "add_member",
    "allocation_for_job",
    "allocations_query",
    "awarded_projects",
    "check_awaiting_council",
    "countries_of",
    "funding_of",
    "get_allocation",
    "get_tranches",
    "my_projects",
    "project_page",
    "projects_of",
    "sub_allocate",
]


# Awarded allocations and their members ---------------------------------------------------------


def check_awaiting_council(db: Session, allocation_id: int) -> Allocation:
    allocation = get_or_404(db, Allocation, allocation_id, "allocation")
    if allocation.status != "awaiting_council":
        raise Conflict(
            f"allocation {allocation.id} is {allocation.status}, not awaiting the council"
        )
    return allocation


def activate_allocation(db: Session, motion: Principal, allocation_id: int) -> Allocation:
    """The council approved it: `motion` is the passed motion's authority
    (`policy.principal.motion_authority`), and this runs in the transaction that records the
    vote (a motion's effect)."""
    allocation = check_awaiting_council(db, allocation_id)
    authorize(motion, Action.AllocationApprove, Resource.allocation(allocation.id))
    allocation.status = "active"
    if allocation.proposal_id is not None:
        db.get_one(Proposal, allocation.proposal_id).status = "awarded"
    record.append(
        db,
        AllocationEvent.AllocationApproved,
        actor=motion,
        subject=f"allocation/{allocation.id}",
        data={"motion": motion.motion_id},
    )
    return allocation


def sub_allocate(
    db: Session, actor: Principal, allocation_id: int, req: SubAllocationCreate
) -> Allocation:
    with db.begin():
        authorize(actor, Action.SubAllocate, ALLOCATION)
        parent = get_or_404(db, Allocation, allocation_id, "allocation")
        if parent.pi_id != actor.person_id:
            raise AccessDenied("only the PI of an allocation may divide it")
        if parent.status != "active":
            raise Conflict(f"allocation {parent.id} is {parent.status}")
        siblings = db.scalars(select(Allocation).where(Allocation.parent_id == parent.id)).all()
        try:
            rules.check_sub_allocation(
                budget_hours(parent.budget),
                [budget_hours(s.budget) for s in siblings],
                dict(req.budget),
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        child = Allocation(
            parent_id=parent.id,
            project=f"{parent.project}.{len(siblings) + 1}",
            title=req.title,
            pi_id=parent.pi_id,
            institution_id=parent.institution_id,
            country=parent.country,
            pool=parent.pool,
            budget=budget_text(dict(req.budget)),
            starts_on=parent.starts_on,
            ends_on=parent.ends_on,
            status="active",
        )
        db.add(child)
        db.flush()
        record.append(
            db,
            AllocationEvent.SubAllocated,
            actor=actor,
            subject=f"allocation/{child.id}",
            data={
                "parent": parent.id,
                "project": child.project,
                "title": child.title,
                "budget": child.budget,
            },
        )
    return child


def add_member(db: Session, actor: Principal, allocation_id: int, person_id: int) -> ProjectMember:
    """The PI adds someone (a student, a collaborator) to an awarded project."""
    with db.begin():
        authorize(actor, Action.SubAllocate, ALLOCATION)
        allocation = get_or_404(db, Allocation, allocation_id, "allocation")
        if allocation.pi_id != actor.person_id:
            raise AccessDenied("only the PI of a project adds its members")
        person = identity.person(db, person_id)
        existing = db.scalar(
            select(ProjectMember).where(
                ProjectMember.project == allocation.project, ProjectMember.person_id == person.id
            )
        )
        if existing is not None:
            raise Conflict(f"{person.name} is already a member of {allocation.project}")
        member = ProjectMember(project=allocation.project, person_id=person.id, role="member")
        db.add(member)
        db.flush()
        record.append(
            db,
            AllocationEvent.MemberAdded,
            actor=actor,
            subject=f"project/{allocation.project}",
            data={"member": person.pseudonym},
        )
    return member


def projects_of(db: Session, person_id: int) -> frozenset[str]:
    """The projects a person belongs to (in the caller's transaction): for `authenticate`."""
    return frozenset(
        db.scalars(select(ProjectMember.project).where(ProjectMember.person_id == person_id))
    )


# Reads, and which allocation pays for a job ----------------------------------------------------


def allocations_query(actor: Principal) -> Any:
    authorize(actor, Action.AllocationRead, ALLOCATION)
    return select(Allocation)


def get_allocation(
    db: Session, actor: Principal, allocation_id: int
) -> tuple[Allocation, dict[str, Decimal], dict[str, Decimal]]:
    """An allocation with its settled hours and open reservations per class."""
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        allocation = get_or_404(db, Allocation, allocation_id, "allocation")
        used, held = ledger.usage(db, allocation)
    return allocation, used, held


def allocation_for_job(
    db: Session, *, project: str, accelerator: str, allocation_id: int | None = None, on: date
) -> Allocation:
    """The allocation a job of `project` on `accelerator` is charged to on `on` (in the
    caller's transaction): the one named, if it is the project's; else the project's only
    active allocation with hours of that class that day. Several: the submitter must name one."""
    if allocation_id is not None:
        chosen = db.get(Allocation, allocation_id)
        if chosen is None or chosen.project != project:
            raise InvalidInput(
                f"allocation_id: project {project} has no allocation {allocation_id}"
            )
        return chosen
    candidates = [
        a
        for a in db.scalars(
            select(Allocation)
            .where(Allocation.project == project, Allocation.status == "active")
            .order_by(Allocation.id)
        )
        if accelerator in a.budget and a.starts_on <= on < a.ends_on
    ]
    if not candidates:
        raise Conflict(f"project {project} has no active allocation with {accelerator} hours today")
    if len(candidates) > 1:
        ids = ", ".join(str(a.id) for a in candidates)
        raise InvalidInput(
            f"project {project} has several allocations with {accelerator} hours "
            f"({ids}): say which with allocation_id"
        )
    return candidates[0]


def active_allocations(db: Session, on: date) -> list[Allocation]:
    """Allocations that may be charged on `on` (in the caller's transaction)."""
    return [
        a
        for a in db.scalars(
            select(Allocation).where(Allocation.status == "active").order_by(Allocation.id)
        )
        if a.starts_on <= on < a.ends_on
    ]


def countries_of(db: Session, allocation_ids: Iterable[int]) -> dict[int, str | None]:
    """The country each allocation is charged to (in the caller's transaction)."""
    ids = sorted(set(allocation_ids))
    if not ids:
        return {}
    return dict(
        db.execute(select(Allocation.id, Allocation.country).where(Allocation.id.in_(ids))).all()
    )


def funding_of(db: Session, allocation_ids: Iterable[int]) -> dict[int, tuple[str, str | None]]:
    """The pool each allocation draws on and the country it is charged to (in the caller's
    transaction)."""
    ids = sorted(set(allocation_ids))
    if not ids:
        return {}
    rows = db.execute(
        select(Allocation.id, Allocation.pool, Allocation.country).where(Allocation.id.in_(ids))
    )
    return {row.id: (row.pool, row.country) for row in rows}


def awarded_projects(
    db: Session, actor: Principal, *, limit: int = 200
) -> list[tuple[Allocation, str, dict[str, Decimal]]]:
    """Active top-level allocations, newest first, with their abstracts (public once awarded)
    and the hours each has drawn so far per class (settled on the ledger)."""
    query = (
        allocations_query(actor)
        .where(Allocation.status == "active", Allocation.parent_id.is_(None))
        .order_by(Allocation.id.desc())
        .limit(limit)
    )
    with db.begin():
        rows = list(db.scalars(query))
        ids = [a.proposal_id for a in rows if a.proposal_id is not None]
        abstracts = {
            pid: text
            for pid, text in db.execute(
                select(Proposal.id, Proposal.abstract).where(
                    Proposal.id.in_(ids), Proposal.status == "awarded"
                )
            )
        }
        drawn = ledger.settled_per_class(db, [a.id for a in rows])
    return [(a, abstracts.get(a.proposal_id, ""), drawn.get(a.id, {})) for a in rows]


# A project as its people see it ----------------------------------------------------------------


@dataclass(frozen=True)
class Tranche:
    """One quarter of one class of an allocation: the hours the quarter releases, what it has
    settled and what open reservations hold in it. `available` (the current quarter only) is
    what a reservation may draw today: the tranche plus the carry-over the regulation allows,
    less what the quarter drew; it is the figure `hold_hours` checks."""

    quarter: int
    starts_on: date
    ends_on: date  # exclusive
    accelerator: str
    released: Decimal
    drawn: Decimal
    reserved: Decimal
    current: bool
    available: Decimal | None

    @property
    def remaining(self) -> Decimal:
        return self.released - self.drawn - self.reserved


def _tranches(db: Session, allocation: Allocation, today: date) -> list[Tranche]:
    """Every quarter of every class, from the balances (in the caller's transaction)."""
    carry = regulation_in_force(db).regulation.allocation.carry_over_percent
    balances = ledger.quarter_balances(db, allocation)
    out = []
    for cls, budget in sorted(budget_hours(allocation.budget).items()):
        quarters = rules.quarters(budget, allocation.starts_on, allocation.ends_on)
        drawn = {q.index: sum(balances.get((cls, q.index), (ZERO, ZERO))) for q in quarters}
        for q in quarters:
            settled, held = balances.get((cls, q.index), (ZERO, ZERO))
            current = q.starts <= today < q.ends
            available = (
                rules.available_hours(quarters, drawn, on=today, carry_over_percent=carry)
                if current
                else None
            )
            out.append(
                Tranche(q.index, q.starts, q.ends, cls, q.hours, settled, held, current, available)
            )
    return out


def get_tranches(
    db: Session, actor: Principal, allocation_id: int, *, today: date | None = None
) -> list[Tranche]:
    """An allocation's quarterly tranches, read as the allocation is (its usage is public)."""
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        allocation = get_or_404(db, Allocation, allocation_id, "allocation")
        return _tranches(db, allocation, today or datetime.now(UTC).date())


@dataclass(frozen=True)
class ProjectPage:
    """What a viewer may know of a project. The public gets what /projects shows (title,
    pool, country, awarded hours, abstract once awarded); its members, operators and auditors
    (those who may read its jobs) also get its members, tranches and hours per class."""

    allocation: Allocation
    abstract: str
    insider: bool
    members: list[tuple[Person, str]]
    tranches: list[Tranche]
    used: dict[str, Decimal]
    reserved: dict[str, Decimal]


def project_page(
    db: Session, actor: Principal, project: str, *, today: date | None = None
) -> ProjectPage:
    """A project by name: its top-level allocation (the active one, else the newest) and what
    the viewer may see of it. The public knows only awarded (active) projects: any other is a
    404 to them, word for word as a missing one."""
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        found = db.scalars(
            select(Allocation)
            .where(Allocation.project == project, Allocation.parent_id.is_(None))
            .order_by((Allocation.status == "active").desc(), Allocation.id.desc())
        ).first()
        if found is None:
            raise NotFound(f"no project {project}")
        proposal = None if found.proposal_id is None else db.get_one(Proposal, found.proposal_id)
        level = Level(proposal.level) if proposal is not None else Level.CL1
        insider = may_see_inside(actor, project, level)
        if found.status != "active" and not insider:
            raise NotFound(f"no project {project}")
        abstract = ""
        if proposal is not None and (proposal.status == "awarded" or insider):
            abstract = proposal.abstract
        if not insider:
            return ProjectPage(found, abstract, False, [], [], {}, {})
        members = [
            (identity.person(db, person_id), role)
            for person_id, role in db.execute(
                select(ProjectMember.person_id, ProjectMember.role)
                .where(ProjectMember.project == project)
                .order_by(ProjectMember.role != "pi", ProjectMember.id)
            )
        ]
        used, held = ledger.usage(db, found)
        tranches = _tranches(db, found, today or datetime.now(UTC).date())
    return ProjectPage(found, abstract, True, members, tranches, used, held)


@dataclass(frozen=True)
class MyProject:
    allocation: Allocation
    role: str
    awarded: Decimal
    drawn: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.awarded - self.drawn


def my_projects(db: Session, actor: Principal) -> list[MyProject]:
    """The signed-in person's projects (their top-level allocations, newest first) with the
    hours awarded, settled so far and left, all classes together."""
    if actor.person_id is None:
        return []
    with db.begin():
        rows = db.execute(
            select(Allocation, ProjectMember.role)
            .join(ProjectMember, ProjectMember.project == Allocation.project)
            .where(ProjectMember.person_id == actor.person_id, Allocation.parent_id.is_(None))
            .order_by(Allocation.id.desc())
        ).all()
        out = []
        for allocation, role in rows:
            used, _ = ledger.usage(db, allocation)
            awarded = sum(budget_hours(allocation.budget).values(), ZERO)
            out.append(MyProject(allocation, role, awarded, sum(used.values(), ZERO)))
    return out
