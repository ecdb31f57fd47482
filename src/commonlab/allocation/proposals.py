"""Calls and proposals: a call carved from a pool of the regulation's capacity split, a
proposal submitted (confidential until decided) and read by those it concerns, and the panel's
decision — an award becomes an allocation, at once or after the council's approval."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation.access import ALLOCATION
from commonlab.allocation.events import AllocationEvent
from commonlab.allocation.models import Allocation, Call, ProjectMember, Proposal
from commonlab.allocation.review import check_still_free
from commonlab.allocation.rules import ZERO, budget_hours, budget_text
from commonlab.allocation.schemas import CallCreate, ProposalCreate
from commonlab.db import get_or_404, utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput
from commonlab.identity import service as identity
from commonlab.policy import Action, authorize
from commonlab.policy.principal import Principal, Role
from commonlab.regulation.service import in_force as regulation_in_force

if TYPE_CHECKING:
    from commonlab.identity.models import Institution

__all__ = [
    "calls_query",
    "create_call",
    "decide_proposal",
    "get_call",
    "get_proposal",
    "list_calls",
    "my_proposals",
    "submit_proposal",
]


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
            budget=budget_text(req.budget),
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


def submit_proposal(
    db: Session, actor: Principal, req: ProposalCreate, *, now: datetime | None = None
) -> Proposal:
    now = now or utcnow()
    with db.begin():
        authorize(actor, Action.ProposalSubmit, ALLOCATION)
        call = get_or_404(db, Call, req.call_id, "call")
        if not call.opens_at <= now < call.closes_at:
            raise Conflict(
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
            identity.person(db, person_id)
        proposal = Proposal(
            call_id=call.id,
            pi_id=actor.person_id,
            institution_id=institution.id,
            title=req.title,
            abstract=req.abstract,
            team=sorted(set(req.team)),
            co_authors=sorted(set(req.co_authors)),
            requested=budget_text(req.requested),
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
    pi = identity.person(db, actor.person_id or 0)
    given = None if named is None else identity.institution(db, named)
    if pi.institution_id is None:
        raise InvalidInput(
            "a proposal's institution is its PI's, and you have none on record: "
            "ask an operator to set your institution"
        )
    own = identity.institution(db, pi.institution_id)
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
    check_still_free(db, actor, proposal)


def decide_proposal(
    db: Session, actor: Principal, proposal_id: int, *, award: bool
) -> Allocation | None:
    """Record the panel's decision. An award above the council threshold waits for a motion."""
    with db.begin():
        authorize(actor, Action.ProposalDecide, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        if proposal.status not in {"submitted", "under_review"}:
            raise Conflict(f"proposal {proposal.id} is already {proposal.status}")
        if award and not any(r.scores for r in proposal.reviews):
            raise Conflict(f"proposal {proposal.id} has no submitted review yet")
        proposal.decided_at = utcnow()
        allocation = None
        if award:
            requested = budget_hours(proposal.requested)
            threshold = regulation_in_force(db).regulation.allocation.council_threshold_hours
            needs_council = sum(requested.values(), ZERO) > threshold
            institution = identity.institution(db, proposal.institution_id)
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
                    "proposal": proposal.id,
                    # The institution its hours count toward (by id: identity's
                    # institution/<id> entries name it), and that institution's country.
                    "institution": allocation.institution_id,
                    "country": allocation.country,
                    "pool": allocation.pool,
                    "budget": allocation.budget,
                    "starts_on": allocation.starts_on.isoformat(),
                    "ends_on": allocation.ends_on.isoformat(),
                    "status": allocation.status,
                    "members": sorted(
                        identity.person(db, pid).pseudonym
                        for pid in {proposal.pi_id, *proposal.team}
                    ),
                },
            )
    return allocation


def calls_query(actor: Principal) -> Any:
    authorize(actor, Action.AllocationRead, ALLOCATION)
    return select(Call)


def get_call(db: Session, actor: Principal, call_id: int) -> Call:
    authorize(actor, Action.AllocationRead, ALLOCATION)
    with db.begin():
        return get_or_404(db, Call, call_id, "call")


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


# Reads for the portal -------------------------------------------------------------------------


def list_calls(db: Session, actor: Principal) -> list[Call]:
    """Every call, closing soonest first."""
    query = calls_query(actor).order_by(Call.closes_at, Call.id)
    with db.begin():
        return list(db.scalars(query))
