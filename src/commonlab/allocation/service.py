"""Allocation use cases: calls, proposals, conflict-free review, decisions, allocations and
sub-allocations, the usage ledger, and member-state share accounting.

One transaction per use case; `authorize()` first; every change writes its record entry in
the same transaction. The arithmetic lives in `rules.py`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation import rules
from commonlab.allocation.events import AllocationEvent
from commonlab.allocation.models import (
    Allocation,
    Balance,
    Call,
    Charge,
    Conflict,
    ProjectMember,
    Proposal,
    Reply,
    Review,
)
from commonlab.allocation.schemas import (
    CallCreate,
    ConflictIn,
    ProposalCreate,
    ReserveIn,
    ReviewScore,
    SubAllocationIn,
)
from commonlab.db import get_or_404, lock_for_writing, utcnow
from commonlab.errors import AccessDenied, InvalidInput, NotFound
from commonlab.errors import Conflict as ConflictError
from commonlab.governance.effects import active_codes, current_shares
from commonlab.governance.in_force import regulation_in_force
from commonlab.identity.models import Institution, Person
from commonlab.policy import Action, Resource, authorize, decide
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal, Role

__all__ = [
    "MyProject",
    "ProjectPage",
    "SuggestedReviewer",
    "Tranche",
    "activate_allocation",
    "active_allocations",
    "add_member",
    "allocations_query",
    "assign_reviewer",
    "awarded_projects",
    "calls_query",
    "close_reservation",
    "countries_of",
    "create_call",
    "decide_proposal",
    "declare_conflict",
    "delivered_hours",
    "get_allocation",
    "get_call",
    "get_tranches",
    "hold_hours",
    "may_see_inside",
    "my_projects",
    "my_proposals",
    "project_page",
    "projects_of",
    "rank_call",
    "rebuild_balances",
    "release",
    "reply",
    "reserve",
    "review_queue",
    "score_review",
    "settle",
    "share_accounting",
    "sub_allocate",
    "submit_proposal",
    "suggested_reviewers",
    "usage",
    "usage_report",
]

ALLOCATION = Resource("allocation", "*")
ZERO = Decimal(0)


def _hours(budget: dict[str, Any]) -> dict[str, Decimal]:
    return {cls: Decimal(str(h)) for cls, h in budget.items()}


def _text(budget: dict[str, Decimal]) -> dict[str, str]:
    return {cls: format(h.normalize(), "f") for cls, h in sorted(budget.items())}


# Calls -----------------------------------------------------------------------------------------


def create_call(db: Session, actor: Principal, req: CallCreate) -> Call:
    with db.begin():
        authorize(actor, Action.CallCreate, ALLOCATION)
        split = regulation_in_force(db).regulation.capacity.pools()
        if split[req.pool] <= 0:
            raise InvalidInput(f"the regulation in force gives the {req.pool} pool no capacity")
        call = Call(
            title=req.title,
            description=req.description,
            pool=req.pool,
            budget=_text(req.budget),
            opens_at=req.opens_at.astimezone(UTC),
            closes_at=req.closes_at.astimezone(UTC),
            eligible_kinds=None if req.eligible_kinds is None else sorted(req.eligible_kinds),
            eligible_countries=None
            if req.eligible_countries is None
            else sorted(req.eligible_countries),
            rubric=[{"criterion": c.criterion, "weight": str(c.weight)} for c in req.rubric],
            exclude_same_country=req.exclude_same_country,
        )
        db.add(call)
        db.flush()
        record.append(
            db,
            AllocationEvent.CallOpened,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"call/{call.id}",
            data={
                "title": call.title,
                "pool": call.pool,
                "pool_percent": format(split[req.pool].normalize(), "f"),
                "budget": call.budget,
                "opens_at": record.format_time(call.opens_at),
                "closes_at": record.format_time(call.closes_at),
            },
        )
    return call


# Proposals -------------------------------------------------------------------------------------


def submit_proposal(
    db: Session, actor: Principal, req: ProposalCreate, *, now: datetime | None = None
) -> Proposal:
    now = now or utcnow()
    with db.begin():
        authorize(actor, Action.ProposalSubmit, ALLOCATION)
        call = get_or_404(db, Call, req.call_id, "call")
        if not call.opens_at <= now < call.closes_at:
            raise ConflictError(
                f"call {call.id} takes proposals from {call.opens_at:%Y-%m-%d %H:%M} "
                f"to {call.closes_at:%Y-%m-%d %H:%M} UTC"
            )
        institution = _pi_institution(db, actor, req.institution_id)
        _check_eligible(call, institution)
        missing = sorted(set(req.requested) - set(call.budget))
        if missing:
            raise InvalidInput(
                f"the call offers no {', '.join(missing)} hours "
                f"(it offers {', '.join(sorted(call.budget))})"
            )
        limit = regulation_in_force(db).regulation.allocation.max_request_hours
        if sum(req.requested.values(), ZERO) > limit:
            raise InvalidInput(
                f"a proposal may ask for at most {limit} hours in all under the regulation"
            )
        for person_id in {*req.team, *req.co_authors}:
            get_or_404(db, Person, person_id, "person")
        proposal = Proposal(
            call_id=call.id,
            pi_id=actor.person_id,
            institution_id=institution.id,
            title=req.title,
            abstract=req.abstract,
            team=sorted(set(req.team)),
            co_authors=sorted(set(req.co_authors)),
            requested=_text(req.requested),
            starts_on=req.starts_on,
            ends_on=req.ends_on,
            level=req.level,
            datasets=req.datasets,
            models=req.models,
            release_plan=req.release_plan.model_dump(),
        )
        db.add(proposal)
        db.flush()
        # Proposals are confidential until decided: the record keeps a commitment to the text.
        record.append(
            db,
            AllocationEvent.ProposalSubmitted,
            actor=actor,
            subject=f"proposal/{proposal.id}",
            data={
                "call": call.id,
                "requested": proposal.requested,
                "level": f"CL-{proposal.level}",
            },
            private={"title": proposal.title, "abstract": proposal.abstract},
        )
    return proposal


def _pi_institution(db: Session, actor: Principal, named: int | None) -> Institution:
    """A proposal's institution is its PI's, as the facility knows it now (only an operator
    changes it): one named for another (a ministry abroad, say) would count its hours toward
    that institution's country."""
    pi = get_or_404(db, Person, actor.person_id or 0, "person")
    given = None if named is None else get_or_404(db, Institution, named, "institution")
    if pi.institution_id is None:
        raise InvalidInput(
            "a proposal's institution is its PI's, and you have none on record: "
            "ask an operator to set your institution"
        )
    own = db.get_one(Institution, pi.institution_id)
    if given is not None and given.id != own.id:
        raise InvalidInput(
            f"institution_id: a proposal's institution is its PI's ({own.name}, id {own.id}); "
            f"you may not submit on behalf of {given.name}"
        )
    return own


def _check_eligible(call: Call, institution: Institution) -> None:
    if call.eligible_kinds is not None and institution.kind not in call.eligible_kinds:
        raise InvalidInput(
            f"call {call.id} is open to {', '.join(call.eligible_kinds)}; "
            f"{institution.name} is a {institution.kind}"
        )
    if call.eligible_countries is not None and institution.country not in call.eligible_countries:
        raise InvalidInput(
            f"call {call.id} is open to institutions in {', '.join(call.eligible_countries)}"
        )


def get_proposal(db: Session, actor: Principal, proposal_id: int) -> Proposal:
    with db.begin():
        authorize(actor, Action.ProposalRead, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        _check_may_read(db, actor, proposal)
        _ = [r.scores for r in proposal.reviews], [r.text for r in proposal.replies]
    return proposal


def _check_may_read(db: Session, actor: Principal, proposal: Proposal) -> None:
    if actor.has_role(Role.OPERATOR) or actor.person_id in {proposal.pi_id, *proposal.team}:
        return
    if actor.person_id not in {r.reviewer_id for r in proposal.reviews}:
        raise AccessDenied("a proposal is read by its PI and team, its reviewers and operators")
    _check_still_free(db, actor, proposal)


def _check_still_free(db: Session, actor: Principal, proposal: Proposal) -> None:
    """An assigned reviewer reads and scores only while free of conflicts by today's facts:
    an institution moved to the PI's, or a conflict declared after assignment, ends access."""
    reasons = _conflicts_now(db, db.get_one(Person, actor.person_id), proposal)
    if reasons:
        raise AccessDenied(
            f"you may no longer read or score proposal {proposal.id}: {'; '.join(reasons)} "
            "(a conflict of interest since you were assigned); ask an operator to reassign it"
        )


# Review ----------------------------------------------------------------------------------------


def declare_conflict(db: Session, actor: Principal, req: ConflictIn) -> Conflict:
    with db.begin():
        authorize(actor, Action.ConflictDeclare, ALLOCATION)
        get_or_404(db, Person, req.person_id, "person")
        if req.person_id == actor.person_id:
            raise InvalidInput("a conflict is with someone else")
        conflict = Conflict(reviewer_id=actor.person_id, person_id=req.person_id, reason=req.reason)
        db.add(conflict)
        db.flush()
        record.append(
            db,
            AllocationEvent.ConflictDeclared,
            actor=actor,
            subject=f"reviewer/{actor.pseudonym}",
            data={},
            private={"with": req.person_id, "reason": req.reason},
        )
    return conflict


def assign_reviewer(db: Session, actor: Principal, proposal_id: int, reviewer_id: int) -> Review:
    with db.begin():
        authorize(actor, Action.ReviewAssign, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        if proposal.status not in {"submitted", "under_review"}:
            raise ConflictError(f"proposal {proposal.id} is {proposal.status}: review is over")
        reviewer = get_or_404(db, Person, reviewer_id, "person")
        if not any(g.role == Role.REVIEWER for g in reviewer.roles):
            raise InvalidInput(f"{reviewer.name} is not a reviewer: grant the reviewer role first")
        reasons = _conflicts_now(db, reviewer, proposal)
        if reasons:
            raise ConflictError(
                f"{reviewer.name} may not review proposal {proposal.id}: {'; '.join(reasons)}"
            )
        if any(r.reviewer_id == reviewer.id for r in proposal.reviews):
            raise ConflictError(f"{reviewer.name} already reviews proposal {proposal.id}")
        review = Review(reviewer_id=reviewer.id)
        proposal.reviews.append(review)  # keeps a session's loaded collection true
        proposal.status = "under_review"
        db.flush()
        record.append(
            db,
            AllocationEvent.ReviewerAssigned,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"proposal/{proposal.id}",
            data={"reviewer": reviewer.pseudonym},
        )
    return review


def eligible_reviewers(
    db: Session, actor: Principal, proposal_id: int
) -> list[tuple[Person, list[str]]]:
    """Every reviewer with the reasons (if any) they are excluded from this proposal."""
    with db.begin():
        authorize(actor, Action.ReviewAssign, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        from commonlab.identity.models import RoleGrant

        reviewers = db.scalars(
            select(Person)
            .join(RoleGrant)
            .where(RoleGrant.role == Role.REVIEWER)
            .order_by(Person.id)
        ).all()
        return [(person, _conflicts_now(db, person, proposal)) for person in reviewers]


def _conflicts_now(db: Session, reviewer: Person, proposal: Proposal) -> list[str]:
    """Every reason `reviewer` may not review `proposal`, from the facts as they are now
    (institutions, declared conflicts): at assignment, and again at every read and score."""
    return rules.conflicts(
        _candidate(db, reviewer),
        pi=_candidate(db, db.get_one(Person, proposal.pi_id)),
        team=proposal.team,
        co_authors=proposal.co_authors,
        declared=_declared(db, reviewer.id, {proposal.pi_id, *proposal.team}),
        exclude_same_country=db.get_one(Call, proposal.call_id).exclude_same_country,
        institution_id=proposal.institution_id,
    )


def _candidate(db: Session, person: Person) -> rules.Candidate:
    country = None
    if person.institution_id is not None:
        country = db.get_one(Institution, person.institution_id).country
    return rules.Candidate(person.id, person.institution_id, country)


def _declared(db: Session, reviewer_id: int, people: set[int]) -> list[int]:
    return list(
        db.scalars(
            select(Conflict.person_id).where(
                Conflict.reviewer_id == reviewer_id, Conflict.person_id.in_(people)
            )
        )
    )


def score_review(db: Session, actor: Principal, proposal_id: int, req: ReviewScore) -> Review:
    with db.begin():
        authorize(actor, Action.ReviewScore, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        review = next((r for r in proposal.reviews if r.reviewer_id == actor.person_id), None)
        if review is None:
            raise AccessDenied(f"you are not assigned to review proposal {proposal.id}")
        _check_still_free(db, actor, proposal)
        if proposal.status != "under_review":
            raise ConflictError(f"proposal {proposal.id} is {proposal.status}: review is over")
        criteria = {c["criterion"] for c in db.get_one(Call, proposal.call_id).rubric}
        if set(req.scores) != criteria:
            raise InvalidInput(f"score exactly the call's criteria: {', '.join(sorted(criteria))}")
        review.scores, review.comment, review.submitted_at = dict(req.scores), req.comment, utcnow()
        record.append(
            db,
            AllocationEvent.ReviewSubmitted,
            actor=actor,
            subject=f"proposal/{proposal.id}",
            data={"reviewer": actor.pseudonym},
            private={"scores": review.scores, "comment": review.comment},
        )
    return review


def reply(db: Session, actor: Principal, proposal_id: int, text: str) -> Reply:
    with db.begin():
        authorize(actor, Action.ProposalReply, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        if proposal.pi_id != actor.person_id:
            raise AccessDenied("only the proposal's PI may reply to its reviews")
        if proposal.status != "under_review":
            raise ConflictError(
                f"proposal {proposal.id} is {proposal.status}: there is nothing to reply to"
            )
        answer = Reply(text=text)
        proposal.replies.append(answer)
        db.flush()
        record.append(
            db,
            AllocationEvent.ReplyGiven,
            actor=actor,
            subject=f"proposal/{proposal.id}",
            data={},
            private={"text": text},
        )
    return answer


def rank_call(db: Session, actor: Principal, call_id: int) -> list[tuple[Proposal, Decimal | None]]:
    """Proposals of a call by weighted mean score, best first (unscored last). Stores scores."""
    with db.begin():
        authorize(actor, Action.ProposalDecide, ALLOCATION)
        call = get_or_404(db, Call, call_id, "call")
        weights = {c["criterion"]: Decimal(c["weight"]) for c in call.rubric}
        total_weight = sum(weights.values(), ZERO)
        ranked = []
        for proposal in db.scalars(select(Proposal).where(Proposal.call_id == call.id)):
            # A score counts only while its reviewer is still free of conflict: one that
            # arose after the score was given takes the score out of the ranking too.
            done = [
                r.scores
                for r in proposal.reviews
                if r.scores and not _conflicts_now(db, db.get_one(Person, r.reviewer_id), proposal)
            ]
            score = None
            if done:
                per_review = [
                    sum(weights[c] * s for c, s in scores.items()) / total_weight for scores in done
                ]
                score = (sum(per_review, ZERO) / len(per_review)).quantize(Decimal("0.01"))
                proposal.score = str(score)
            ranked.append((proposal, score))
    ranked.sort(key=lambda item: (item[1] is None, -(item[1] or 0), item[0].id))
    return ranked


# Decisions and allocations ---------------------------------------------------------------------


def decide_proposal(
    db: Session, actor: Principal, proposal_id: int, *, award: bool
) -> Allocation | None:
    """Record the panel's decision. An award above the council threshold waits for a motion."""
    with db.begin():
        authorize(actor, Action.ProposalDecide, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        if proposal.status not in {"submitted", "under_review"}:
            raise ConflictError(f"proposal {proposal.id} is already {proposal.status}")
        if award and not any(r.scores for r in proposal.reviews):
            raise ConflictError(f"proposal {proposal.id} has no submitted review yet")
        proposal.decided_at = utcnow()
        allocation = None
        if award:
            requested = _hours(proposal.requested)
            threshold = regulation_in_force(db).regulation.allocation.council_threshold_hours
            needs_council = sum(requested.values(), ZERO) > threshold
            institution = db.get_one(Institution, proposal.institution_id)
            allocation = Allocation(
                proposal_id=proposal.id,
                project=f"proj-{proposal.id}",
                title=proposal.title,
                pi_id=proposal.pi_id,
                institution_id=institution.id,
                country=institution.country,
                pool=db.get_one(Call, proposal.call_id).pool,
                budget=proposal.requested,
                starts_on=proposal.starts_on,
                ends_on=proposal.ends_on,
                status="awaiting_council" if needs_council else "active",
            )
            db.add(allocation)
            proposal.status = "awaiting_council" if needs_council else "awarded"
            db.add(ProjectMember(project=allocation.project, person_id=proposal.pi_id, role="pi"))
            for member in proposal.team:
                db.add(ProjectMember(project=allocation.project, person_id=member, role="member"))
            db.flush()
        else:
            proposal.status = "rejected"
        record.append(
            db,
            AllocationEvent.ProposalDecided,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"proposal/{proposal.id}",
            data={"decision": proposal.status, "score": proposal.score},
        )
        if allocation is not None:
            # Awards are public: title, institution country and hours.
            record.append(
                db,
                AllocationEvent.AllocationGranted,
                actor=actor,
                as_role=Role.OPERATOR,
                subject=f"allocation/{allocation.id}",
                data={
                    "project": allocation.project,
                    "title": allocation.title,
                    "country": allocation.country,
                    "pool": allocation.pool,
                    "budget": allocation.budget,
                    "starts_on": allocation.starts_on.isoformat(),
                    "ends_on": allocation.ends_on.isoformat(),
                    "status": allocation.status,
                    "members": sorted(
                        db.get_one(Person, pid).pseudonym
                        for pid in {proposal.pi_id, *proposal.team}
                    ),
                },
            )
    return allocation


def check_awaiting_council(db: Session, allocation_id: int) -> Allocation:
    allocation = get_or_404(db, Allocation, allocation_id, "allocation")
    if allocation.status != "awaiting_council":
        raise ConflictError(
            f"allocation {allocation.id} is {allocation.status}, not awaiting the council"
        )
    return allocation


def activate_allocation(db: Session, allocation_id: int, *, motion_id: int) -> Allocation:
    """The council approved it: in the caller's transaction (a motion's effect)."""
    from commonlab.policy.principal import SYSTEM

    allocation = check_awaiting_council(db, allocation_id)
    allocation.status = "active"
    if allocation.proposal_id is not None:
        db.get_one(Proposal, allocation.proposal_id).status = "awarded"
    record.append(
        db,
        AllocationEvent.AllocationApproved,
        actor=SYSTEM,
        subject=f"allocation/{allocation.id}",
        data={"motion": motion_id},
    )
    return allocation


def sub_allocate(
    db: Session, actor: Principal, allocation_id: int, req: SubAllocationIn
) -> Allocation:
    with db.begin():
        authorize(actor, Action.SubAllocate, ALLOCATION)
        parent = get_or_404(db, Allocation, allocation_id, "allocation")
        if parent.pi_id != actor.person_id:
            raise AccessDenied("only the PI of an allocation may divide it")
        if parent.status != "active":
            raise ConflictError(f"allocation {parent.id} is {parent.status}")
        siblings = db.scalars(select(Allocation).where(Allocation.parent_id == parent.id)).all()
        try:
            rules.check_sub_allocation(
                _hours(parent.budget), [_hours(s.budget) for s in siblings], dict(req.budget)
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
            budget=_text(dict(req.budget)),
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
            data={"parent": parent.id, "project": child.project, "budget": child.budget},
        )
    return child


# The usage ledger ------------------------------------------------------------------------------


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
        raise ConflictError(
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


def reserve(db: Session, actor: Principal, allocation_id: int, req: ReserveIn) -> Charge:
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
    on = on or utcnow().date()
    authorize(actor, Action.LedgerCharge, ALLOCATION)
    allocation = get_or_404(db, Allocation, allocation_id, "allocation")
    if allocation.status != "active":
        raise ConflictError(
            f"allocation {allocation.id} is {allocation.status}: it cannot be charged"
        )
    budget = _hours(allocation.budget)
    if accelerator not in budget:
        raise InvalidInput(f"allocation {allocation.id} has no {accelerator} hours")
    if not allocation.starts_on <= on < allocation.ends_on:
        raise ConflictError(
            f"allocation {allocation.id} runs {allocation.starts_on} to {allocation.ends_on}"
        )
    for owner in _chain(db, allocation):
        # Lock this quarter's row first, then check what the budget has left.
        _move_balance(db, owner, accelerator, on, settled=ZERO, held=ZERO)
        _check_budget(db, owner, accelerator, hours, on)
    for owner in _chain(db, allocation):
        _move_balance(db, owner, accelerator, on, settled=ZERO, held=hours)
    charge = Charge(
        allocation_id=allocation.id,
        kind="reserve",
        accelerator=accelerator,
        hours=hours,
        job=job,
        on=on,
        for_job=for_job,
    )
    db.add(charge)
    db.flush()
    record.append(
        db,
        AllocationEvent.HoursReserved,
        actor=actor,
        subject=f"allocation/{allocation.id}",
        data={"ledger": charge.id, "class": accelerator, "hours": str(hours), "job": job},
    )
    return charge


def _check_budget(db: Session, allocation: Allocation, cls: str, hours: Decimal, on: date) -> None:
    rules_in_force = regulation_in_force(db).regulation.allocation
    budget = _hours(allocation.budget)[cls]
    tranches = rules.quarters(budget, allocation.starts_on, allocation.ends_on)
    drawn = _drawn_by_quarter(db, allocation, cls)
    left = rules.available_hours(
        tranches, drawn, on=on, carry_over_percent=rules_in_force.carry_over_percent
    )
    grace = budget * rules_in_force.grace_margin_percent / 100
    if hours > left + grace:
        raise ConflictError(
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
        raise ConflictError(
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
        },
    )
    return charge


def _already_closed(held: Charge) -> ConflictError:
    return ConflictError(
        f"reservation {held.id} is already closed: a reservation closes once and a job is "
        "charged exactly once; this request changed nothing"
    )


# Member-state shares ---------------------------------------------------------------------------


def delivered_hours(db: Session, *, start: date, end: date) -> dict[str, Decimal]:
    """Hours settled in [start, end) per country of the allocations' institutions (in the
    caller's transaction): what each member state was delivered."""
    rows = db.execute(
        select(Allocation.country, func.sum(Charge.hours))
        .join(Allocation, Allocation.id == Charge.allocation_id)
        .where(Charge.kind == "settle", Charge.on >= start, Charge.on < end)
        .group_by(Allocation.country)
    ).all()
    return {country: Decimal(hours or 0) for country, hours in rows if country}


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


def share_accounting(db: Session, actor: Principal, *, start: date, end: date) -> dict[str, Any]:
    """Delivered versus entitled share per member state over [start, end)."""
    with db.begin():
        authorize(actor, Action.AllocationRead, ALLOCATION)
        members = active_codes(db)
        delivered: dict[str, Decimal] = {code: ZERO for code in members}
        # Hours delivered to institutions of other countries come from the facility's open
        # share, not from any member state's: shown apart, never counted in a state's share.
        outside: dict[str, Decimal] = {}
        for country, hours in delivered_hours(db, start=start, end=end).items():
            (delivered if country in members else outside)[country] = hours
        tolerance = regulation_in_force(db).regulation.allocation.share_tolerance_percent
        lines = rules.share_report(delivered, current_shares(db), tolerance=tolerance)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tolerance_percent": format(tolerance.normalize(), "f"),
        "states": [
            {
                "code": line.code,
                "entitled_percent": str(line.entitled_percent),
                "delivered_hours": str(line.delivered_hours),
                "delivered_percent": str(line.delivered_percent),
                "deviation": str(line.deviation),
                "outside_band": line.outside_band,
            }
            for line in lines
        ],
        "outside_members": [
            {"country": country, "delivered_hours": str(hours)}
            for country, hours in sorted(outside.items())
        ],
    }


# Project membership ----------------------------------------------------------------------------


def add_member(db: Session, actor: Principal, allocation_id: int, person_id: int) -> ProjectMember:
    """The PI adds someone (a student, a collaborator) to an awarded project."""
    with db.begin():
        authorize(actor, Action.SubAllocate, ALLOCATION)
        allocation = get_or_404(db, Allocation, allocation_id, "allocation")
        if allocation.pi_id != actor.person_id:
            raise AccessDenied("only the PI of a project adds its members")
        person = get_or_404(db, Person, person_id, "person")
        existing = db.scalar(
            select(ProjectMember).where(
                ProjectMember.project == allocation.project, ProjectMember.person_id == person.id
            )
        )
        if existing is not None:
            raise ConflictError(f"{person.name} is already a member of {allocation.project}")
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


# Reads -----------------------------------------------------------------------------------------


def calls_query(actor: Principal) -> Any:
    authorize(actor, Action.AllocationRead, ALLOCATION)
    return select(Call)


def get_call(db: Session, actor: Principal, call_id: int) -> Call:
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        return get_or_404(db, Call, call_id, "call")


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
        used, held = usage(db, allocation)
    return allocation, used, held


# Usage reports ---------------------------------------------------------------------------------

REPORT_GROUPS = ("member", "institution", "call", "project")


# The group `usage_report(by="member")` puts allocations of non-member countries in.
OUTSIDE_MEMBERS = "outside the member states"


def usage_report(
    db: Session, actor: Principal, *, by: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Awarded budget and hours delivered over [start, end), per member state, institution,
    call or project (top-level projects; a sub-allocation counts towards its parent)."""
    if by not in REPORT_GROUPS:
        raise InvalidInput(f"group by one of {', '.join(REPORT_GROUPS)}")
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        tops = db.scalars(
            select(Allocation).where(Allocation.parent_id.is_(None), Allocation.status == "active")
        ).all()
        calls = {pid: cid for pid, cid in db.execute(select(Proposal.id, Proposal.call_id))}
        names = {iid: name for iid, name in db.execute(select(Institution.id, Institution.name))}
        children: dict[int, int] = {
            child: parent
            for child, parent in db.execute(
                select(Allocation.id, Allocation.parent_id).where(Allocation.parent_id.is_not(None))
            )
        }
        delivered: dict[int, Decimal] = defaultdict(Decimal)
        for allocation_id, hours in db.execute(
            select(Charge.allocation_id, func.sum(Charge.hours))
            .where(Charge.kind == "settle", Charge.on >= start, Charge.on < end)
            .group_by(Charge.allocation_id)
        ):
            delivered[children.get(allocation_id, allocation_id)] += Decimal(hours or 0)
        members = active_codes(db)
    rows: dict[str, dict[str, Any]] = {}
    for a in tops:
        key = {
            # Institutions of other countries draw on the open share, not a state's.
            "member": a.country if a.country in members else OUTSIDE_MEMBERS,
            "institution": names.get(a.institution_id, "—"),
            "call": f"call/{calls.get(a.proposal_id, '—')}",
            "project": a.project,
        }[by]
        row = rows.setdefault(
            key, {"group": key, "allocations": 0, "budget_hours": ZERO, "delivered_hours": ZERO}
        )
        row["allocations"] += 1
        row["budget_hours"] += sum(_hours(a.budget).values(), ZERO)
        row["delivered_hours"] += delivered.get(a.id, ZERO)
    return [
        {
            **row,
            "budget_hours": str(row["budget_hours"]),
            "delivered_hours": str(row["delivered_hours"]),
        }
        for row in sorted(rows.values(), key=lambda r: r["group"])
    ]


def review_queue(db: Session, actor: Principal) -> list[tuple[Review, Proposal, Call, Institution]]:
    """The proposals assigned to this reviewer that they are still free to review (no
    conflict of interest by today's facts), unscored first."""
    if actor.person_id is None:
        return []
    authorize(actor, Action.ReviewScore, ALLOCATION)
    query = (
        select(Review, Proposal, Call, Institution)
        .join(Proposal, Proposal.id == Review.proposal_id)
        .join(Call, Call.id == Proposal.call_id)
        .join(Institution, Institution.id == Proposal.institution_id)
        .where(Review.reviewer_id == actor.person_id)
        .order_by(Review.submitted_at.is_not(None), Review.id)
    )
    with db.begin():
        reviewer = db.get_one(Person, actor.person_id)
        return [
            (r, p, c, i) for r, p, c, i in db.execute(query) if not _conflicts_now(db, reviewer, p)
        ]


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
        drawn: dict[int, dict[str, Decimal]] = defaultdict(dict)
        for allocation_id, cls, settled in db.execute(
            select(Balance.allocation_id, Balance.accelerator, func.sum(Balance.settled))
            .where(Balance.allocation_id.in_([a.id for a in rows]))
            .group_by(Balance.allocation_id, Balance.accelerator)
        ):
            drawn[allocation_id][cls] = Decimal(settled)
    return [(a, abstracts.get(a.proposal_id, ""), drawn.get(a.id, {})) for a in rows]


# A project as its people see it (reads) -------------------------------------------------------


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
    balances = {
        (cls, quarter): (Decimal(settled or 0), Decimal(held or 0))
        for cls, quarter, settled, held in db.execute(
            select(Balance.accelerator, Balance.quarter, Balance.settled, Balance.held).where(
                Balance.allocation_id == allocation.id
            )
        )
    }
    out = []
    for cls, budget in sorted(_hours(allocation.budget).items()):
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


def may_see_inside(actor: Principal, project: str, level: Level = Level.CL1) -> bool:
    """Whether `actor` sees a project's insides: the rules that read its jobs decide (as
    compute's job pages apply them), at the project's containment level — an uncleared member
    of a CL-3 project sees only what the public sees."""
    resource = Resource.job(project, level=level)
    return decide(actor, Action.JobRead, resource).allowed and (
        actor.is_system or decide(actor, Action.ResourceRead, resource).allowed
    )


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
        members = list(
            db.execute(
                select(Person, ProjectMember.role)
                .join(ProjectMember, ProjectMember.person_id == Person.id)
                .where(ProjectMember.project == project)
                .order_by(ProjectMember.role != "pi", ProjectMember.id)
            )
        )
        used, held = usage(db, found)
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
            used, _ = usage(db, allocation)
            awarded = sum(_hours(allocation.budget).values(), ZERO)
            out.append(MyProject(allocation, role, awarded, sum(used.values(), ZERO)))
    return out


def my_proposals(db: Session, actor: Principal) -> list[tuple[Proposal, Call]]:
    """The proposals the signed-in person submitted as PI, newest first, with their calls."""
    if actor.person_id is None:
        return []
    with db.begin():
        return list(
            db.execute(
                select(Proposal, Call)
                .join(Call, Call.id == Proposal.call_id)
                .where(Proposal.pi_id == actor.person_id)
                .order_by(Proposal.id.desc())
            )
        )


@dataclass(frozen=True)
class SuggestedReviewer:
    person: Person
    open_reviews: int  # assigned and not yet scored, on proposals still under review
    done_reviews: int


def suggested_reviewers(db: Session, actor: Principal, proposal_id: int) -> list[SuggestedReviewer]:
    """Reviewers free of every conflict with this proposal (`eligible_reviewers`' rules) and
    not yet on it, least loaded first (fewest open reviews, then fewest done, then by name).
    Only a suggestion: assigning stays `assign_reviewer`, which checks the conflicts again."""
    candidates = eligible_reviewers(db, actor, proposal_id)
    with db.begin():
        assigned = set(
            db.scalars(select(Review.reviewer_id).where(Review.proposal_id == proposal_id))
        )
        free = [p for p, reasons in candidates if not reasons and p.id not in assigned]
        load = {
            (reviewer, scored): count
            for reviewer, scored, count in db.execute(
                select(Review.reviewer_id, Review.submitted_at.is_not(None), func.count())
                .join(Proposal, Proposal.id == Review.proposal_id)
                .where(
                    Review.reviewer_id.in_([p.id for p in free]),
                    Review.submitted_at.is_not(None) | (Proposal.status == "under_review"),
                )
                .group_by(Review.reviewer_id, Review.submitted_at.is_not(None))
            )
        }
    ranked = [
        SuggestedReviewer(p, load.get((p.id, False), 0), load.get((p.id, True), 0)) for p in free
    ]
    return sorted(
        ranked, key=lambda s: (s.open_reviews, s.done_reviews, s.person.name, s.person.id)
    )
