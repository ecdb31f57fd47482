"""Governance use cases: founding the council, delegates, motions, votes, closing votes
(and applying what passed), and reading regulations. One transaction per use case; every
change writes its record entry in it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.db import as_utc, lock_for_writing, utcnow
from commonlab.errors import AccessDenied, CommonlabError, Conflict, InvalidInput, NotFound
from commonlab.governance import effects
from commonlab.governance.events import GovernanceEvent
from commonlab.governance.models import (
    Delegate,
    MemberState,
    Motion,
    ScaleVersion,
    Vote,
)
from commonlab.governance.rules import (
    QUORUM,
    Choice,
    MotionKind,
    Outcome,
    VotingRule,
    decide,
    rule_for,
)
from commonlab.governance.schemas import (
    CouncilCreate,
    DelegateOut,
    MemberOut,
    MotionCreate,
    MotionOut,
    RollCallOut,
)
from commonlab.identity import service as identity
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import SYSTEM, Principal, Role, motion_authority
from commonlab.regulation import service as regulation
from commonlab.regulation.document import ContributionScale, Regulation
from commonlab.regulation.in_force import InForce

__all__ = [
    "GOVERNANCE",
    "active_codes",
    "appoint_delegate",
    "cast_vote",
    "close_due_motions",
    "close_motion",
    "council_motions",
    "current_shares",
    "delegate_seat",
    "end_delegate",
    "found_council",
    "member_views",
    "motion_view",
    "motion_views",
    "motions_query",
    "projected_outcome",
    "quorum",
    "regulation_changes",
    "regulation_diff",
    "regulation_history",
    "regulation_version",
    "scale_history",
    "table_motion",
]

GOVERNANCE = Resource("governance", "council")
MIN_VOTING_WINDOW = timedelta(minutes=1)
MAX_VOTING_WINDOW = timedelta(days=90)


# Members and delegates ----------------------------------------------------------------------


def found_council(db: Session, actor: Principal, req: CouncilCreate) -> list[MemberState]:
    """Create the founding member states and their scale; only once, before any member exists."""
    with db.begin():
        authorize(actor, Action.MembersFound, GOVERNANCE)
        if db.scalar(select(MemberState.id).limit(1)) is not None:
            raise Conflict("the council is already founded: new members join by a council vote")
        codes = [m.code for m in req.members]
        if len(set(codes)) != len(codes):
            raise InvalidInput("each member state may appear once")
        shares = {m.code: m.contribution for m in req.members}
        # Nothing can be adopted before the council exists: this is version 0, which the
        # record carries so that an audit can check every figure derived from it.
        founding = regulation.in_force(db).regulation
        try:
            ContributionScale(shares=shares).check(ceiling=founding.contribution_ceiling_percent)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        members = [MemberState(code=m.code, name=m.name) for m in req.members]
        db.add_all(members)
        db.add(ScaleVersion(shares={c: str(v) for c, v in sorted(shares.items())}))
        db.flush()
        record.append(
            db,
            GovernanceEvent.CouncilFounded,
            actor=actor,
            as_role=Role.OPERATOR,
            subject="council",
            data={
                "members": [{"code": m.code, "name": m.name} for m in req.members],
                "scale": {c: str(v) for c, v in sorted(shares.items())},
                "regulation": founding.model_dump(mode="json"),
            },
        )
    return members


def appoint_delegate(db: Session, actor: Principal, code: str, person_id: int) -> Delegate:
    with db.begin():
        authorize(actor, Action.DelegateAppoint, GOVERNANCE)
        member = _active_member(db, code)
        person = identity.person(db, person_id)
        if _seat_of(db, person_id) is not None:
            raise Conflict(f"{person.name} already sits for a member state")
        # One step: the appointment brings the delegate role with it (recorded as its own
        # grant), rather than refusing until an operator granted it separately.
        identity.grant_role_in(db, actor, person, Role.DELEGATE)
        delegate = Delegate(person_id=person.id, member_state_id=member.id)
        db.add(delegate)
        db.flush()
        record.append(
            db,
            GovernanceEvent.DelegateAppointed,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"member/{member.code}",
            data={"delegate": person.pseudonym, "name": person.name},
        )
    return delegate


def end_delegate(db: Session, actor: Principal, code: str, person_id: int) -> Delegate:
    with db.begin():
        authorize(actor, Action.DelegateEnd, GOVERNANCE)
        member = _active_member(db, code)
        seat = _seat_of(db, person_id)
        if seat is None or seat.member_state_id != member.id:
            raise NotFound(f"person {person_id} is not a delegate of {member.code}")
        seat.ended_at = utcnow()
        person = identity.person(db, person_id)
        record.append(
            db,
            GovernanceEvent.DelegateEnded,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"member/{member.code}",
            data={"delegate": person.pseudonym, "name": person.name},
        )
    return seat


def delegate_seat(db: Session, person_id: int | None) -> MemberState | None:
    """The member state a person sits for, if any (for the portal and `me`)."""
    if person_id is None:
        return None
    with db.begin():
        seat = _seat_of(db, person_id)
        return None if seat is None else seat.member_state


def active_codes(db: Session) -> set[str]:
    """The codes of the member states now on the council (in the caller's transaction)."""
    return set(db.scalars(select(MemberState.code).where(MemberState.removed_at.is_(None))))


def current_shares(db: Session) -> dict[str, Decimal]:
    """The adopted contribution scale: member state code → percent (caller's transaction)."""
    row = db.scalar(select(ScaleVersion).order_by(ScaleVersion.id.desc()).limit(1))
    return {} if row is None else {code: Decimal(v) for code, v in row.shares.items()}


def _seat_of(db: Session, person_id: int) -> Delegate | None:
    return db.scalar(
        select(Delegate).where(Delegate.person_id == person_id, Delegate.ended_at.is_(None))
    )


def _active_member(db: Session, code: str) -> MemberState:
    member = db.scalar(select(MemberState).where(MemberState.code == code.upper()))
    if member is None or not member.active:
        raise NotFound(f"{code.upper()} is not a member state")
    return member


def scale_history(db: Session, actor: Principal) -> list[ScaleVersion]:
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        return list(db.scalars(select(ScaleVersion).order_by(ScaleVersion.id.desc())))


# Motions and votes --------------------------------------------------------------------------


def table_motion(
    db: Session, actor: Principal, req: MotionCreate, *, now: datetime | None = None
) -> Motion:
    now = now or utcnow()
    opens_at = as_utc(req.opens_at) if req.opens_at else now
    closes_at = as_utc(req.closes_at)
    if opens_at < now - timedelta(minutes=5):
        raise InvalidInput("opens_at is in the past: a vote cannot open before it is tabled")
    if not MIN_VOTING_WINDOW <= closes_at - opens_at <= MAX_VOTING_WINDOW:
        raise InvalidInput("the vote must stay open between one minute and 90 days")
    with db.begin():
        authorize(actor, Action.MotionTable, GOVERNANCE)
        seat = _sitting_delegate(db, actor)
        payload = effects.parse_payload(req.kind, req.payload)
        effects.effect_of(req.kind).check(db, payload)
        motion = Motion(
            kind=req.kind,
            title=req.title,
            text=req.text,
            payload=payload.model_dump(mode="json"),
            rule=rule_for(req.kind),
            tabled_by=actor.person_id,
            tabled_for=seat.member_state_id,
            opens_at=opens_at,
            closes_at=closes_at,
        )
        db.add(motion)
        db.flush()
        record.append(
            db,
            GovernanceEvent.MotionTabled,
            actor=actor,
            as_role=Role.DELEGATE,
            subject=f"motion/{motion.id}",
            data={
                "kind": motion.kind,
                "title": motion.title,
                "payload": motion.payload,
                "rule": motion.rule,
                "for": seat.member_state.code,
                "opens_at": record.format_time(opens_at),
                "closes_at": record.format_time(closes_at),
            },
        )
    return motion


def cast_vote(
    db: Session,
    actor: Principal,
    motion_id: int,
    choice: Choice,
    *,
    member: str | None = None,
    now: datetime | None = None,
) -> Vote:
    """Cast (or change) the vote of the state the delegate sits for."""
    now = now or utcnow()
    with db.begin():
        authorize(actor, Action.MotionVote, GOVERNANCE)
        motion = _motion(db, motion_id)
        seat = _sitting_delegate(db, actor)
        if member is not None and member != seat.member_state.code:
            raise AccessDenied(
                f"you sit for {seat.member_state.code}: you cannot vote for {member}"
            )
        if motion.status != "open":
            raise Conflict(f"motion {motion.id} is {motion.status}: its vote is over")
        if now < motion.opens_at:
            raise Conflict(
                f"voting on motion {motion.id} opens at {motion.opens_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        if now >= motion.closes_at:
            raise Conflict(
                f"voting on motion {motion.id} closed at {motion.closes_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        vote = db.scalar(
            select(Vote).where(
                Vote.motion_id == motion.id, Vote.member_state_id == seat.member_state_id
            )
        )
        changed = vote is not None
        if vote is not None and vote.choice == choice:
            raise Conflict(f"{seat.member_state.code} already voted {choice} on motion {motion.id}")
        if vote is None:
            vote = Vote(
                motion_id=motion.id,
                member_state_id=seat.member_state_id,
                choice=choice,
                cast_by=actor.person_id,
            )
            db.add(vote)
        else:
            vote.choice, vote.cast_by, vote.cast_at = choice, actor.person_id, now
        db.flush()
        record.append(
            db,
            GovernanceEvent.VoteCast,
            actor=actor,
            as_role=Role.DELEGATE,
            subject=f"motion/{motion.id}",
            data={"member": seat.member_state.code, "choice": choice, "changed": changed},
        )
        if active_codes(db) <= set(_ballots(db, motion)):
            # Every member state has spoken: waiting for the deadline could only let states
            # change their minds, not let anyone else in. The vote ends now, on the record.
            _close(db, SYSTEM, motion, now, early=True)
    return vote


def close_motion(
    db: Session, actor: Principal, motion_id: int, *, now: datetime | None = None
) -> Motion:
    with db.begin():
        authorize(actor, Action.MotionClose, GOVERNANCE)
        # Of two closers at once (a leader and, for a moment, its successor), the second
        # waits here and then finds the motion decided: it is decided once.
        lock_for_writing(db)
        motion = db.get(Motion, motion_id, with_for_update=True, populate_existing=True)
        if motion is None:
            raise NotFound(f"no motion with id {motion_id}")
        _close(db, actor, motion, now or utcnow())
    return motion


def close_due_motions(db: Session, *, now: datetime | None = None) -> list[int]:
    """Close every open motion whose time is up, as the system. Returns their ids."""
    now = now or utcnow()
    with db.begin():
        due = list(
            db.scalars(
                select(Motion.id)
                .where(Motion.status == "open", Motion.closes_at <= now)
                .order_by(Motion.id)
            )
        )
    for motion_id in due:
        close_motion(db, SYSTEM, motion_id, now=now)
    return due


def _close(
    db: Session, actor: Principal, motion: Motion, now: datetime, *, early: bool = False
) -> None:
    """Decide the motion: at or after its deadline, or `early` once every state has voted."""
    if motion.status != "open":
        raise Conflict(f"motion {motion.id} is already {motion.status}")
    if now < motion.closes_at and not early:
        # To the second: "open until 14:15" read at 14:15:30 looks like a broken clock.
        raise Conflict(
            f"motion {motion.id} is open until {motion.closes_at:%Y-%m-%d %H:%M:%S} UTC; it "
            "closes then, or as soon as every member state has voted"
        )
    members = active_codes(db)
    votes = _ballots(db, motion)
    outcome = decide(
        rule_for(MotionKind(motion.kind)),
        votes=votes,
        members=frozenset(members),
        contributions=current_shares(db),
    )
    result: dict[str, Any] = outcome.as_dict()
    motion.status = "passed" if outcome.passed else "failed"
    if outcome.passed:
        kind = MotionKind(motion.kind)
        payload = effects.parse_payload(kind, motion.payload)
        try:
            with record.savepoint(db):
                # The effect acts as the passed motion: authorized as it, on the record as it.
                effects.effect_of(kind).apply(db, motion_authority(motion.id), payload)
        except CommonlabError as exc:
            # The vote passed but the facility changed under it: record why nothing happened.
            motion.status = "lapsed"
            result["effect_error"] = exc.message
    motion.result = result
    motion.decided_at = now
    record.append(
        db,
        GovernanceEvent.MotionDecided,
        actor=actor,
        subject=f"motion/{motion.id}",
        data={
            "status": motion.status,
            "outcome": result,
            "roll_call": {code: str(choice) for code, choice in sorted(votes.items())},
            "closed_early": early,
        },
    )


def _ballots(db: Session, motion: Motion) -> dict[str, Choice]:
    """Each state's current vote on `motion`, read now (the session may hold an older list)."""
    return {
        code: Choice(choice)
        for code, choice in db.execute(
            select(MemberState.code, Vote.choice)
            .join(Vote, Vote.member_state_id == MemberState.id)
            .where(Vote.motion_id == motion.id)
        )
    }


def _sitting_delegate(db: Session, actor: Principal) -> Delegate:
    seat = None if actor.person_id is None else _seat_of(db, actor.person_id)
    if seat is None or not seat.member_state.active:
        raise InvalidInput("you do not sit on the council for a member state")
    return seat


def _motion(db: Session, motion_id: int) -> Motion:
    motion = db.get(Motion, motion_id)
    if motion is None:
        raise NotFound(f"no motion with id {motion_id}")
    return motion


def motions_query(
    actor: Principal, *, status: str | None = None, kind: MotionKind | None = None
) -> Any:
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    query = select(Motion)
    if status:
        query = query.where(Motion.status == status)
    if kind:
        query = query.where(Motion.kind == kind)
    return query


def regulation_history(db: Session, actor: Principal = SYSTEM) -> list[InForce]:
    """Every adopted version, newest first, then the provisional one (version 0)."""
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        return regulation.history(db)


def regulation_version(
    db: Session, version: int | None = None, *, at: datetime | None = None
) -> InForce:
    with db.begin():
        if version is None:
            return regulation.in_force(db, at=at)
        return regulation.version(db, version)


def regulation_diff(db: Session, old: int, new: int) -> list[dict[str, Any]]:
    """What changed between two stored versions: one row per changed field, by dotted path."""
    return regulation_changes(
        regulation_version(db, old).regulation, regulation_version(db, new).regulation
    )


def regulation_changes(before: Regulation, after: Regulation) -> list[dict[str, Any]]:
    """What changes from one regulation document to another (a proposal, say)."""
    old = _flatten(before.model_dump(mode="json"))
    new = _flatten(after.model_dump(mode="json"))
    return [
        {"field": key, "from": old.get(key), "to": new.get(key)}
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


# Read models: what the API and the portal show ----------------------------------------------


def member_views(
    db: Session, actor: Principal, *, include_removed: bool = False
) -> list[MemberOut]:
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        query = select(MemberState).order_by(MemberState.code)
        if not include_removed:
            query = query.where(MemberState.removed_at.is_(None))
        members = list(db.scalars(query))
        shares = current_shares(db)
        seats = [d for m in members for d in m.delegates if d.ended_at is None]
        people = identity.people(db, {d.person_id for d in seats})
        return [
            MemberOut(
                code=m.code,
                name=m.name,
                admitted_at=m.admitted_at,
                admitted_by_motion=m.admitted_by_motion,
                removed_at=m.removed_at,
                contribution=format(shares.get(m.code, Decimal(0)).normalize(), "f"),
                delegates=[
                    DelegateOut(
                        person_id=d.person_id,
                        name=people[d.person_id].name,
                        pseudonym=people[d.person_id].pseudonym,
                    )
                    for d in m.delegates
                    if d.ended_at is None
                ],
            )
            for m in members
        ]


def motion_views(db: Session, motions: list[Motion]) -> list[MotionOut]:
    """Render motions with names (in the caller's transaction)."""
    people = identity.people(
        db, {m.tabled_by for m in motions} | {v.cast_by for m in motions for v in m.votes}
    )
    codes = {i: c for i, c in db.execute(select(MemberState.id, MemberState.code))}
    return [
        MotionOut(
            id=m.id,
            kind=MotionKind(m.kind),
            title=m.title,
            text=m.text,
            payload=m.payload,
            rule=m.rule,
            tabled_by=people[m.tabled_by].name,
            tabled_for=codes[m.tabled_for],
            opens_at=m.opens_at,
            closes_at=m.closes_at,
            status=m.status,
            result=m.result,
            decided_at=m.decided_at,
            votes=[
                RollCallOut(
                    member=codes[v.member_state_id],
                    choice=Choice(v.choice),
                    delegate=people[v.cast_by].name,
                    cast_at=v.cast_at,
                )
                for v in m.votes
            ],
        )
        for m in motions
    ]


def motion_view(db: Session, actor: Principal, motion_id: int) -> MotionOut:
    authorize(actor, Action.GovernanceRead, GOVERNANCE)
    with db.begin():
        return motion_views(db, [_motion(db, motion_id)])[0]


# Reads for the portal -----------------------------------------------------------------------


def council_motions(
    db: Session, actor: Principal, *, past: int
) -> tuple[list[MotionOut], list[MotionOut]]:
    """The open motions, oldest first, and the last `past` decided ones, newest first."""
    open_query = motions_query(actor, status="open").order_by(Motion.id)
    past_query = (
        motions_query(actor).where(Motion.status != "open").order_by(Motion.id.desc()).limit(past)
    )
    with db.begin():
        opened = motion_views(db, list(db.scalars(open_query)))
        decided = motion_views(db, list(db.scalars(past_query)))
    return opened, decided


def quorum(rule: VotingRule) -> Fraction:
    """The share of the member states that must take part for a vote under `rule` to count."""
    return QUORUM[rule]


def projected_outcome(motion: MotionOut, members: list[MemberOut]) -> Outcome | None:
    """What an open motion's vote would decide if it closed now (None under an unknown rule)."""
    try:
        rule = VotingRule(motion.rule)
    except ValueError:
        return None
    return decide(
        rule,
        votes={v.member: v.choice for v in motion.votes},
        members=frozenset(m.code for m in members),
        contributions={m.code: Decimal(m.contribution) for m in members},
    )


# Reads for other domains ----------------------------------------------------------------------
# In the caller's transaction and without an authorization of their own: the calling use case
# has authorized what it reads them for.


def motion(db: Session, motion_id: int) -> Motion:
    """The motion with this id, or NotFound (the simulator checks a what-if against it)."""
    return _motion(db, motion_id)
