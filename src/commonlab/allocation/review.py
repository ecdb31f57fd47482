"""Review of proposals, free of conflicts of interest: declared conflicts, assignment (refused
with every reason `rules.conflicts` finds), scores, the PI's reply, the ranking, the reviewer's
queue and suggested reviewers. Conflicts are judged on today's facts at every step."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation import rules
from commonlab.allocation.access import ALLOCATION
from commonlab.allocation.events import AllocationEvent
from commonlab.allocation.models import Call, ConflictOfInterest, Proposal, Reply, Review
from commonlab.allocation.rules import ZERO
from commonlab.allocation.schemas import ConflictCreate, ReviewCreate
from commonlab.db import get_or_404, utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput
from commonlab.identity import service as identity
from commonlab.policy import Action, authorize
from commonlab.policy.principal import Principal, Role

if TYPE_CHECKING:
    from commonlab.identity.models import Institution, Person

__all__ = [
    "SuggestedReviewer",
    "assign_reviewer",
    "check_still_free",
    "declare_conflict",
    "eligible_reviewers",
    "rank_call",
    "reply",
    "review_queue",
    "score_review",
    "suggested_reviewers",
]


def declare_conflict(db: Session, actor: Principal, req: ConflictCreate) -> ConflictOfInterest:
    with db.begin():
        authorize(actor, Action.ConflictDeclare, ALLOCATION)
        identity.person(db, req.person_id)
        if req.person_id == actor.person_id:
            raise InvalidInput("a conflict is with someone else")
        conflict = ConflictOfInterest(
            reviewer_id=actor.person_id, person_id=req.person_id, reason=req.reason
        )
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
            raise Conflict(f"proposal {proposal.id} is {proposal.status}: review is over")
        reviewer = identity.person(db, reviewer_id)
        if not identity.holds_role(reviewer, Role.REVIEWER):
            raise InvalidInput(f"{reviewer.name} is not a reviewer: grant the reviewer role first")
        reasons = _conflicts_now(db, reviewer, proposal)
        if reasons:
            raise Conflict(
                f"{reviewer.name} may not review proposal {proposal.id}: {'; '.join(reasons)}"
            )
        if any(r.reviewer_id == reviewer.id for r in proposal.reviews):
            raise Conflict(f"{reviewer.name} already reviews proposal {proposal.id}")
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
        reviewers = identity.people_with_role(db, Role.REVIEWER)
        return [(person, _conflicts_now(db, person, proposal)) for person in reviewers]


def _conflicts_now(db: Session, reviewer: Person, proposal: Proposal) -> list[str]:
    """Every reason `reviewer` may not review `proposal`, from the facts as they are now
    (institutions, declared conflicts): at assignment, and again at every read and score."""
    return rules.conflicts(
        _candidate(db, reviewer),
        pi=_candidate(db, identity.person(db, proposal.pi_id)),
        team=proposal.team,
        co_authors=proposal.co_authors,
        declared=_declared(db, reviewer.id, {proposal.pi_id, *proposal.team}),
        exclude_same_country=db.get_one(Call, proposal.call_id).exclude_same_country,
        institution_id=proposal.institution_id,
    )


def _candidate(db: Session, person: Person) -> rules.Candidate:
    country = None
    if person.institution_id is not None:
        country = identity.institution(db, person.institution_id).country
    return rules.Candidate(person.id, person.institution_id, country)


def _declared(db: Session, reviewer_id: int, people: set[int]) -> list[int]:
    return list(
        db.scalars(
            select(ConflictOfInterest.person_id).where(
                ConflictOfInterest.reviewer_id == reviewer_id,
                ConflictOfInterest.person_id.in_(people),
            )
        )
    )


def check_still_free(db: Session, actor: Principal, proposal: Proposal) -> None:
    """An assigned reviewer reads and scores only while free of conflicts by today's facts:
    an institution moved to the PI's, or a conflict declared after assignment, ends access."""
    reasons = _conflicts_now(db, identity.person(db, actor.person_id or 0), proposal)
    if reasons:
        raise AccessDenied(
            f"you may no longer read or score proposal {proposal.id}: {'; '.join(reasons)} "
            "(a conflict of interest since you were assigned); ask an operator to reassign it"
        )


def score_review(db: Session, actor: Principal, proposal_id: int, req: ReviewCreate) -> Review:
    with db.begin():
        authorize(actor, Action.ReviewScore, ALLOCATION)
        proposal = get_or_404(db, Proposal, proposal_id, "proposal")
        review = next((r for r in proposal.reviews if r.reviewer_id == actor.person_id), None)
        if review is None:
            raise AccessDenied(f"you are not assigned to review proposal {proposal.id}")
        check_still_free(db, actor, proposal)
        if proposal.status != "under_review":
            raise Conflict(f"proposal {proposal.id} is {proposal.status}: review is over")
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
            raise Conflict(
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
                if r.scores and not _conflicts_now(db, identity.person(db, r.reviewer_id), proposal)
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


def review_queue(db: Session, actor: Principal) -> list[tuple[Review, Proposal, Call, Institution]]:
    """The proposals assigned to this reviewer that they are still free to review (no
    conflict of interest by today's facts), unscored first."""
    if actor.person_id is None:
        return []
    authorize(actor, Action.ReviewScore, ALLOCATION)
    query = (
        select(Review, Proposal, Call)
        .join(Proposal, Proposal.id == Review.proposal_id)
        .join(Call, Call.id == Proposal.call_id)
        .where(Review.reviewer_id == actor.person_id)
        .order_by(Review.submitted_at.is_not(None), Review.id)
    )
    with db.begin():
        reviewer = identity.person(db, actor.person_id)
        return [
            (r, p, c, identity.institution(db, p.institution_id))
            for r, p, c in db.execute(query)
            if not _conflicts_now(db, reviewer, p)
        ]


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
