"""Portal pages for the council: member states and their delegates, motions with live
tallies and roll calls, a delegate's vote form, and the regulations with their history and
diffs. Server-rendered; no page needs JavaScript.

The reads here shape governance.service's read models for templates; the one change a page
makes (a vote) goes through governance.service.cast_vote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import ceil
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from commonlab.db import utcnow
from commonlab.errors import CommonlabError, NotFound
from commonlab.governance import service as governance
from commonlab.governance.schemas import Choice, MemberOut, MotionKind, MotionOut, VotingRule
from commonlab.http import MAX_ID, DbSession
from commonlab.policy.principal import Principal
from commonlab.portal.pages import POOL_LABELS, CheckedForm, CurrentViewer, Viewer, render_page
from commonlab.portal.whatif_panel import WhatIfPanel, motion_whatif
from commonlab.regulation.document import Regulation

if TYPE_CHECKING:
    from commonlab.governance.schemas import Outcome
    from commonlab.regulation.service import InForce

__all__ = [
    "CouncilOverview",
    "MotionDetail",
    "PercentChart",
    "RegulationsOverview",
    "Tally",
    "council_overview",
    "motion_detail",
    "percent_chart",
    "percent_text",
    "regulations_overview",
    "router",
    "rule_in_words",
    "tally_of",
]

router = APIRouter(include_in_schema=False)

PAST_MOTIONS = 50
MotionId = Annotated[int, Path(ge=1, le=MAX_ID)]

KIND_LABELS = {
    MotionKind.ADOPT_REGULATION: "Adopt a regulation",
    MotionKind.ADMIT_MEMBER: "Admit a member state",
    MotionKind.REMOVE_MEMBER: "Remove a member state",
    MotionKind.SET_CONTRIBUTION_SCALE: "Set the contribution scale",
    MotionKind.APPROVE_ALLOCATION: "Approve a large allocation",
    MotionKind.CERTIFY_PARTITION: "Certify a partition",
    MotionKind.REGISTER_WITNESS: "Register a witness key",
    MotionKind.GRANT_CL4_CLEARANCE: "Grant a CL-4 clearance",
}
_RULE_WORDS = {
    VotingRule.SIMPLE_MAJORITY: (
        "Simple majority of member states",
        "passes with more yes than no votes; abstentions count for neither side",
    ),
    VotingRule.TWO_THIRDS: (
        "Two-thirds majority of member states",
        "passes when at least two thirds of the yes-or-no votes are yes",
    ),
    VotingRule.DOUBLE_MAJORITY: (
        "Double majority",
        "passes with yes from a majority of all member states that together hold more than "
        "half of the contributions",
    ),
}
_FRACTION_WORDS = {Fraction(1, 2): "half", Fraction(2, 3): "two thirds"}


# Geometry for the inline SVG charts -------------------------------------------------------------


@dataclass(frozen=True)
class PercentBar:
    label: str
    value: Decimal
    text: str  # the value as a person writes it: "12.5", not "12.50"
    y: float
    width: float
    value_x: float


@dataclass(frozen=True)
class PercentChart:
    """Horizontal bars for percentages, the largest one drawn full length."""

    width: int
    height: int
    label_width: int
    row: int
    bars: tuple[PercentBar, ...]


def percent_chart(
    data: list[tuple[str, Decimal]], *, width: int = 560, row: int = 28, label_width: int = 210
) -> PercentChart:
    plot = width - label_width - 56  # room on the right for the value text
    largest = max((value for _, value in data), default=Decimal(0))
    bars = []
    for i, (label, value) in enumerate(data):
        length = float(plot * max(value, Decimal(0)) / largest) if largest > 0 else 0.0
        bars.append(
            PercentBar(
                label=label,
                value=value,
                text=format(value.normalize(), "f"),
                y=i * row + 4,
                width=round(max(length, 1.0 if value else 0.0), 2),
                value_x=round(label_width + length + 6, 2),
            )
        )
    return PercentChart(width, max(len(data), 1) * row + 4, label_width, row, tuple(bars))


@dataclass(frozen=True)
class Segment:
    choice: str
    label: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class Tally:
    """How the member states stand on a motion: counted live while open, as decided after."""

    members: int
    yes: int
    no: int
    abstain: int
    absent: int
    segments: tuple[Segment, ...]
    width: int = 480
    height: int = 26

    @property
    def taking_part(self) -> int:
        return self.yes + self.no + self.abstain


def tally_of(*, members: int, yes: int, no: int, abstain: int, absent: int) -> Tally:
    width = 480
    parts = [
        ("yes", "Yes", yes),
        ("no", "No", no),
        ("abstain", "Abstain", abstain),
        ("absent", "Not voted", absent),
    ]
    total = max(yes + no + abstain + absent, 1)
    segments, x = [], 0.0
    for choice, label, count in parts:
        w = width * count / total
        segments.append(Segment(choice, label, count, round(x, 2), round(w, 2)))
        x += w
    return Tally(members, yes, no, abstain, absent, tuple(segments), width)


# Read models for the pages ----------------------------------------------------------------------


@dataclass(frozen=True)
class MotionRow:
    motion: MotionOut
    kind_label: str
    tally: Tally
    rule: str


@dataclass(frozen=True)
class CouncilOverview:
    members: list[MemberOut]
    scale_chart: PercentChart
    open_motions: list[MotionRow]
    past_motions: list[MotionRow]


@dataclass(frozen=True)
class ScaleRow:
    code: str
    name: str
    before: str | None
    proposed: str | None


@dataclass(frozen=True)
class MotionDetail:
    motion: MotionOut
    kind_label: str
    rule_name: str
    rule_text: str
    quorum_text: str
    tally: Tally
    # While the vote is open: what would happen if it closed now.
    projection: Outcome | None
    window: str  # "upcoming", "open", "counting" (time is up, not yet closed) or "closed"
    # Payload, readably
    payload_json: str
    scale_rows: list[ScaleRow]
    # What the "before" column of scale_rows is: "now", or "before" (the scale it replaced).
    scale_before: str
    regulation_title: str | None
    regulation_base: InForce | None
    regulation_changes: list[dict[str, Any]] | None
    # The viewer's seat, if they sit for a member state, and that state's current vote
    seat: str | None
    seat_choice: str | None
    member_names: dict[str, str]
    # adopt_regulation: the latest what-if simulation attached to the motion, if any.
    simulation: WhatIfPanel | None = None


@dataclass(frozen=True)
class VersionRow:
    item: InForce
    motion_id: int | None


@dataclass(frozen=True)
class RegulationsOverview:
    in_force: InForce
    in_force_motion: int | None
    capacity_chart: PercentChart
    history: list[VersionRow]


def rule_in_words(rule: str, members: int) -> tuple[str, str, str]:
    """(name, how it passes, the quorum) for a motion's rule, in words a person reads."""
    try:
        voting_rule = VotingRule(rule)
    except ValueError:
        return (rule, "an unknown rule: the motion cannot pass", "")
    name, text = _RULE_WORDS[voting_rule]
    quorum = governance.quorum(voting_rule)
    share = _FRACTION_WORDS.get(quorum, str(quorum))
    needed = ceil(quorum * members) if members else 0
    quorum_text = f"at least {share} of the member states must take part"
    if members:
        quorum_text += f" ({needed} of {members}, abstentions included)"
    return name, text, quorum_text


def council_overview(db: Session, actor: Principal) -> CouncilOverview:
    members = sorted(governance.member_views(db, actor), key=lambda m: m.name)
    chart = percent_chart([(f"{m.name} ({m.code})", Decimal(m.contribution)) for m in members])
    opened, past = governance.council_motions(db, actor, past=PAST_MOTIONS)
    codes = {m.code for m in members}
    return CouncilOverview(
        members=members,
        scale_chart=chart,
        open_motions=[_row(m, codes) for m in opened],
        past_motions=[_row(m, codes) for m in past],
    )


def motion_detail(db: Session, actor: Principal, motion_id: int) -> MotionDetail:
    motion = governance.motion_view(db, actor, motion_id)
    members = governance.member_views(db, actor)
    seat = governance.delegate_seat(db, actor.person_id)
    codes = {m.code for m in members}
    now = utcnow()
    if motion.status != "open":
        window = "closed"
    elif now < motion.opens_at:
        window = "upcoming"
    elif now < motion.closes_at:
        window = "open"
    else:
        window = "counting"
    projection = None
    if motion.status == "open":
        projection = governance.projected_outcome(motion, members)
    tally = _tally(motion, codes)
    rule_name, rule_text, quorum_text = rule_in_words(motion.rule, tally.members)
    scale_before, scale_rows = _scale_rows(db, actor, motion, members)
    seat_code = seat.code if seat is not None and seat.active else None
    seat_choice = next((str(v.choice) for v in motion.votes if v.member == seat_code), None)
    title, base, changes = _regulation_change(db, motion)
    return MotionDetail(
        motion=motion,
        kind_label=KIND_LABELS.get(motion.kind, str(motion.kind)),
        rule_name=rule_name,
        rule_text=rule_text,
        quorum_text=quorum_text,
        tally=tally,
        projection=projection,
        window=window,
        payload_json=json.dumps(motion.payload, indent=2, ensure_ascii=False, sort_keys=True),
        scale_rows=scale_rows,
        scale_before=scale_before,
        regulation_title=title,
        regulation_base=base,
        regulation_changes=changes,
        seat=seat_code,
        seat_choice=seat_choice,
        member_names={m.code: m.name for m in members},
        simulation=(
            motion_whatif(db, actor, motion_id)
            if motion.kind == MotionKind.ADOPT_REGULATION
            else None
        ),
    )


def regulations_overview(db: Session, actor: Principal) -> RegulationsOverview:
    history = governance.regulation_history(db, actor)
    links = {item.version: item.motion_id for item in history if item.motion_id is not None}
    current = history[0]
    capacity = current.regulation.capacity.pools()
    chart = percent_chart([(POOL_LABELS.get(k, k), v) for k, v in capacity.items()])
    return RegulationsOverview(
        in_force=current,
        in_force_motion=links.get(current.version),
        capacity_chart=chart,
        history=[VersionRow(item, links.get(item.version)) for item in history],
    )


def _row(motion: MotionOut, codes: set[str]) -> MotionRow:
    name, _, _ = rule_in_words(motion.rule, len(codes))
    return MotionRow(
        motion, KIND_LABELS.get(motion.kind, str(motion.kind)), _tally(motion, codes), name
    )


def _tally(motion: MotionOut, codes: set[str]) -> Tally:
    result = motion.result or {}
    if motion.status != "open" and "members" in result:
        return tally_of(
            members=int(result["members"]),
            yes=int(result.get("yes", 0)),
            no=int(result.get("no", 0)),
            abstain=int(result.get("abstain", 0)),
            absent=int(result.get("absent", 0)),
        )
    # Live: only votes of states that are members now count, as when the vote closes.
    counted = [v.choice for v in motion.votes if v.member in codes]
    return tally_of(
        members=len(codes),
        yes=counted.count(Choice.YES),
        no=counted.count(Choice.NO),
        abstain=counted.count(Choice.ABSTAIN),
        absent=len(codes) - len(counted),
    )


def _scale_rows(
    db: Session, actor: Principal, motion: MotionOut, members: list[MemberOut]
) -> tuple[str, list[ScaleRow]]:
    """For motions that carry a contribution scale: each state's share before and proposed.

    "Before" is the scale in force now while the vote is open, and the scale it replaced
    once a passing motion adopted it.
    """
    payload = motion.payload
    proposed = payload.get("shares") if motion.kind == MotionKind.SET_CONTRIBUTION_SCALE else None
    if motion.kind in (MotionKind.ADMIT_MEMBER, MotionKind.REMOVE_MEMBER):
        proposed = payload.get("scale")
    if not isinstance(proposed, dict):
        return "now", []
    label = "now"
    before = {m.code: Decimal(m.contribution) for m in members}
    if motion.status == "passed":
        history = governance.scale_history(db, actor)
        adopted = [i for i, v in enumerate(history) if v.motion_id == motion.id]
        if adopted and adopted[0] + 1 < len(history):
            label = "before"
            replaced = history[adopted[0] + 1].shares
            before = {code: Decimal(share) for code, share in replaced.items()}
    names = {m.code: m.name for m in members}
    if motion.kind == MotionKind.ADMIT_MEMBER:
        names.setdefault(str(payload.get("code")), str(payload.get("name")))
    codes = sorted(set(before) | {str(c) for c in proposed}, key=lambda c: names.get(c, c))
    rows = [
        ScaleRow(
            code=code,
            name=names.get(code, code),
            before=percent_text(before.get(code)),
            proposed=percent_text(_decimal(proposed.get(code))),
        )
        for code in codes
    ]
    return label, rows


def percent_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except ArithmeticError:
        return None


def _regulation_change(
    db: Session, motion: MotionOut
) -> tuple[str | None, InForce | None, list[dict[str, Any]] | None]:
    """For adopt_regulation: the proposed title, the version it is compared with, the changes.

    An open motion is compared with the regulation in force now; a decided one with the one
    in force when its vote opened, which is what the delegates voted to change.
    """
    if motion.kind != MotionKind.ADOPT_REGULATION:
        return None, None, None
    try:
        proposed = Regulation.model_validate(motion.payload.get("regulation"))
    except ValidationError:
        return None, None, None
    at = None if motion.status == "open" else motion.opens_at
    base = governance.regulation_version(db, at=at)
    return proposed.title, base, governance.regulation_changes(base.regulation, proposed)


# Pages --------------------------------------------------------------------------------------------


@router.get("/council")
def council(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    overview = council_overview(db, viewer.principal)
    return render_page(request, viewer, "council.html", nav="council", overview=overview)


@router.get("/motions/{motion_id}")
def motion(
    request: Request,
    motion_id: MotionId,
    db: DbSession,
    viewer: CurrentViewer,
    voted: Choice | None = None,
) -> Response:
    detail = motion_detail(db, viewer.principal, motion_id)
    # The notice only confirms what the roll call says, whatever the address claims.
    confirmed = voted if voted is not None and detail.seat_choice == voted else None
    return _motion_page(request, viewer, detail, voted=confirmed)


@router.post("/motions/{motion_id}/vote")
def vote(
    request: Request,
    motion_id: MotionId,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    choice: Annotated[Choice, Form()],
) -> Response:
    try:
        governance.cast_vote(db, viewer.principal, motion_id, choice)
    except NotFound:
        raise
    except CommonlabError as exc:
        detail = motion_detail(db, viewer.principal, motion_id)
        return _motion_page(request, viewer, detail, error=exc.message, status=exc.status)
    return RedirectResponse(f"/motions/{motion_id}?voted={choice.value}", status_code=303)


def _motion_page(
    request: Request,
    viewer: Viewer,
    detail: MotionDetail,
    *,
    voted: Choice | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        viewer,
        "motion.html",
        status=status,
        nav="council",
        detail=detail,
        voted=voted,
        error=error,
    )


@router.get("/regulations")
def regulations(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    overview = regulations_overview(db, viewer.principal)
    return render_page(request, viewer, "regulations.html", nav="regulations", overview=overview)


@router.get("/regulations/diff")
def regulation_diff(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    old: Annotated[int, Query(alias="from", ge=0, le=1_000_000)],
    new: Annotated[int, Query(alias="to", ge=0, le=1_000_000)],
) -> Response:
    changes = governance.regulation_diff(db, old, new)
    return render_page(
        request,
        viewer,
        "regulation_diff.html",
        nav="regulations",
        old=old,
        new=new,
        changes=changes,
        versions=[item.version for item in governance.regulation_history(db, viewer.principal)],
    )
