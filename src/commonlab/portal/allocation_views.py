"""Portal pages for allocation: open and past calls, a PI's proposal form and its confirmation,
a reviewer's queue with a scoring form, the public list of awarded projects, and the member
states' delivered versus entitled share over the last four quarters. No page needs JavaScript.

Every change goes through allocation.service (submit_proposal, score_review), and every read
through the service that owns it (allocation, identity, compute, artifacts): nothing here
queries a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from commonlab.allocation import service as allocation
from commonlab.allocation.schemas import ProposalCreate, ReviewCreate
from commonlab.artifacts import service as artifacts
from commonlab.compute import service as compute
from commonlab.db import utcnow
from commonlab.errors import AccessDenied, CommonlabError, InvalidInput, NotFound, field_and_reason
from commonlab.governance import service as governance
from commonlab.http import MAX_ID, DbSession
from commonlab.identity import service as identity
from commonlab.policy.principal import Principal, Role
from commonlab.portal.pages import POOL_LABELS, CheckedForm, CurrentViewer, Viewer, render_page
from commonlab.portal.templating import hours_text

if TYPE_CHECKING:
    from commonlab.allocation.models import Allocation, Call, Proposal, Review
    from commonlab.identity.models import Institution

__all__ = [
    "CallView",
    "MyWork",
    "ProjectView",
    "ProposalFormValues",
    "QueueItem",
    "ShareChart",
    "SharesOverview",
    "TrancheChart",
    "budget_rows",
    "calls_overview",
    "hours_text",
    "my_work",
    "project_view",
    "proposal_form_values",
    "review_queue",
    "router",
    "share_chart",
    "shares_overview",
    "tranche_chart",
]

router = APIRouter(include_in_schema=False)

CallId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProposalId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProjectName = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][\w.-]*$")]
MAX_PROJECT_JOBS = 50
MAX_PROJECTS = 200
MIN_BAND = 6.0  # SVG units
LEVELS = (1, 2, 3, 4)
_FIELD_LABELS = {
    "title": "Title",
    "abstract": "Abstract",
    "institution_id": "Institution",
    "requested": "Requested hours",
    "starts_on": "Start date",
    "ends_on": "End date",
    "level": "Containment level",
    "datasets": "Datasets",
    "models": "Models",
    "release_plan": "Release plan",
    "licence": "Licence",
    "scores": "Scores",
    "comment": "Comment",
}


def budget_rows(budget: dict[str, str]) -> list[tuple[str, str]]:
    """(class, hours) with the hours grouped by thin spaces, as the other pages write numbers."""
    return [(cls, hours_text(hours)) for cls, hours in sorted(budget.items())]


# Calls -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallView:
    """A call as a page shows it: its window in words and its rubric with weights."""

    call: Call
    state: str  # "open", "upcoming" or "closed"
    pool_label: str

    @property
    def budget(self) -> list[tuple[str, str]]:
        return budget_rows(self.call.budget)


def _call_view(call: Call, now: datetime) -> CallView:
    if now < call.opens_at:
        state = "upcoming"
    elif now < call.closes_at:
        state = "open"
    else:
        state = "closed"
    return CallView(call, state, POOL_LABELS.get(call.pool, call.pool))


def calls_overview(db: Session, actor: Principal) -> dict[str, list[CallView]]:
    """Calls by state: open (closing soonest first), upcoming, and past (newest first)."""
    now = utcnow()
    views = [_call_view(c, now) for c in allocation.list_calls(db, actor)]
    return {
        "open": [v for v in views if v.state == "open"],
        "upcoming": [v for v in views if v.state == "upcoming"],
        "past": [v for v in reversed(views) if v.state == "closed"],
    }


@dataclass
class ProposalFormValues:
    """What the proposal form shows: empty, or what the PI typed when it was refused."""

    title: str = ""
    abstract: str = ""
    institution_id: str = ""
    hours: dict[str, str] = field(default_factory=dict)
    starts_on: str = ""
    ends_on: str = ""
    level: str = "1"
    datasets: str = ""
    models: str = ""
    weights: bool = True
    data: bool = True
    code: bool = True
    licence: str = "Apache-2.0"


def proposal_form_values(actor: Principal) -> ProposalFormValues:
    today = utcnow().date()
    return ProposalFormValues(
        institution_id=str(actor.institution_id or ""),
        starts_on=today.isoformat(),
        ends_on=(today + timedelta(days=365)).isoformat(),
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _id_or_raw(text: str) -> int | str:
    # The schema wants a strict integer; anything else stays text so its message names it.
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 16 else text


def _hours_or_raw(text: str) -> Decimal | str:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return text


def _one_line(exc: ValidationError) -> str:
    """The first problem of a form, named the way the form names the field."""
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    name = _FIELD_LABELS.get(loc[-1] if loc and loc[0] == "release_plan" else (loc or [""])[0])
    if loc and loc[0] == "requested" and len(loc) > 1:
        name = f"Requested {loc[1]} hours"
    _, message = field_and_reason(first)
    message = message.replace("ends_on", "the end date").replace("starts_on", "the start date")
    if name is None:
        return message
    return f"{name}: {message[0].lower() + message[1:]}" if message else name


# Shares ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharePoint:
    label: str  # "Q1 2026"
    delivered: Decimal | None  # None: nothing was delivered to any member state that quarter
    x: float
    y: float | None
    outside: bool


@dataclass(frozen=True)
class SharePanel:
    """One member state's small chart: its tolerance band, entitlement line and delivered share."""

    code: str
    name: str
    entitled: Decimal
    band_top: float
    band_height: float
    entitled_y: float
    points: tuple[SharePoint, ...]

    @property
    def path(self) -> str:
        """The delivered line, broken where a quarter had no usage."""
        parts, pen_down = [], False
        for p in self.points:
            if p.y is None:
                pen_down = False
                continue
            parts.append(f"{'L' if pen_down else 'M'}{p.x},{p.y}")
            pen_down = True
        return " ".join(parts)


@dataclass(frozen=True)
class ShareChart:
    """Small multiples on one scale: a panel per member state, one point per quarter."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    ticks: tuple[tuple[float, int], ...]  # (y, percent)
    quarters: tuple[tuple[float, str], ...]  # (x, label)
    panels: tuple[SharePanel, ...]
    tolerance: Decimal
    # A line needs two quarters with usage: until then each quarter is drawn as a bar up from
    # the baseline (one point on its own reads as nothing).
    series: bool = True
    baseline: float = 0.0


def _nice_top(value: Decimal) -> int:
    for top in (10, 20, 25, 40, 50, 60, 80, 100):
        if value <= top:
            return top
    return 100


def share_chart(
    quarters: list[str],
    states: list[tuple[str, str, Decimal, list[Decimal | None], list[bool]]],
    *,
    tolerance: Decimal,
    width: int = 300,
    height: int = 170,
) -> ShareChart:
    """`states`: (code, name, entitled %, delivered % per quarter or None, outside band)."""
    left, right, top, bottom = 40, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max(
        [e + tolerance for _, _, e, _, _ in states]
        + [d for *_, ds, _ in states for d in ds if d is not None],
        default=Decimal(10),
    )
    scale_top = _nice_top(highest)

    def y_of(percent: Decimal) -> float:
        clamped = min(max(percent, Decimal(0)), Decimal(scale_top))
        return round(top + plot_h - float(clamped) * plot_h / scale_top, 2)

    inset = 24  # keeps the first and last quarter's label inside the panel
    step = (plot_w - 2 * inset) / max(len(quarters) - 1, 1)
    xs = [round(left + inset + i * step, 2) for i in range(len(quarters))]
    panels = []
    for code, name, entitled, delivered, outside in states:
        high, low = y_of(entitled + tolerance), y_of(entitled - tolerance)
        if low - high < MIN_BAND:  # a narrow band stays visible at this scale
            middle = (low + high) / 2
            high, low = round(middle - MIN_BAND / 2, 2), round(middle + MIN_BAND / 2, 2)
        points = tuple(
            SharePoint(label, d, x, None if d is None else y_of(d), out)
            for label, d, x, out in zip(quarters, delivered, xs, outside, strict=True)
        )
        panels.append(
            SharePanel(code, name, entitled, high, round(low - high, 2), y_of(entitled), points)
        )
    ticks = tuple((y_of(Decimal(t)), t) for t in (0, scale_top // 2, scale_top))
    with_usage = sum(any(ds[i] is not None for *_, ds, _ in states) for i in range(len(quarters)))
    return ShareChart(
        width,
        height,
        left,
        right,
        top,
        bottom,
        ticks,
        tuple(zip(xs, quarters, strict=True)),
        tuple(panels),
        tolerance,
        series=with_usage >= 2,
        baseline=y_of(Decimal(0)),
    )


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _next_quarter(start: date) -> date:
    month = start.month + 3
    return date(start.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def _last_quarters(today: date, count: int = 4) -> list[tuple[date, date]]:
    """The current calendar quarter and the `count - 1` before it, oldest first."""
    start = _quarter_start(today)
    spans = []
    for _ in range(count):
        spans.append((start, _next_quarter(start)))
        start = _quarter_start(start - timedelta(days=1))
    return spans[::-1]


def _quarter_label(start: date) -> str:
    return f"Q{(start.month - 1) // 3 + 1} {start.year}"


@dataclass(frozen=True)
class ShareRow:
    code: str
    name: str
    entitled: Decimal
    delivered_hours: Decimal
    delivered_percent: Decimal
    deviation: Decimal
    outside_band: bool
    by_quarter: tuple[Decimal | None, ...]


@dataclass(frozen=True)
class SharesOverview:
    start: date
    end: date
    tolerance: Decimal
    quarters: list[str]
    rows: list[ShareRow]
    total_hours: Decimal
    chart: ShareChart | None  # None while no member state has received any compute


def shares_overview(db: Session, actor: Principal, *, today: date | None = None) -> SharesOverview:
    spans = _last_quarters(today or utcnow().date())
    start, end = spans[0][0], spans[-1][1]
    names = {m.code: m.name for m in governance.member_views(db, actor)}
    whole = allocation.share_accounting(db, actor, start=start, end=end)
    per_quarter = [allocation.share_accounting(db, actor, start=a, end=b) for a, b in spans]
    labels = [_quarter_label(a) for a, _ in spans]
    # A quarter in which no member state received anything has no share to plot.
    used = [any(Decimal(s["delivered_hours"]) for s in q["states"]) for q in per_quarter]
    tolerance = Decimal(whole["tolerance_percent"])
    rows = []
    for line in whole["states"]:
        code = line["code"]
        quarters = [{s["code"]: s for s in q["states"]}.get(code) for q in per_quarter]
        rows.append(
            ShareRow(
                code=code,
                name=names.get(code, code),
                entitled=Decimal(line["entitled_percent"]),
                delivered_hours=Decimal(line["delivered_hours"]),
                delivered_percent=Decimal(line["delivered_percent"]),
                deviation=Decimal(line["deviation"]),
                outside_band=bool(line["outside_band"]),
                by_quarter=tuple(
                    Decimal(q["delivered_percent"]) if q is not None and u else None
                    for q, u in zip(quarters, used, strict=True)
                ),
            )
        )
    total = sum((r.delivered_hours for r in rows), Decimal(0))
    chart = None
    if total > 0:
        chart = share_chart(
            labels,
            [
                (
                    r.code,
                    r.name,
                    r.entitled,
                    list(r.by_quarter),
                    [d is not None and abs(d - r.entitled) > tolerance for d in r.by_quarter],
                )
                for r in rows
            ],
            tolerance=tolerance,
        )
    return SharesOverview(start, end, tolerance, labels, rows, total, chart)


# Reviews -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    review: Review
    proposal: Proposal
    call: Call
    institution: Institution

    @property
    def open(self) -> bool:
        return self.proposal.status == "under_review"

    @property
    def requested(self) -> list[tuple[str, str]]:
        return budget_rows(self.proposal.requested)


def review_queue(db: Session, actor: Principal) -> list[QueueItem]:
    """Proposals assigned to this reviewer, unscored first."""
    return [QueueItem(*row) for row in allocation.review_queue(db, actor)]


# Projects ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectRow:
    allocation: Allocation
    abstract: str
    pool_label: str
    drawn: dict[str, Decimal] = field(default_factory=dict)

    @property
    def budget(self) -> list[tuple[str, str]]:
        return budget_rows(self.allocation.budget)

    @property
    def usage(self) -> list[tuple[str, Decimal, Decimal]]:
        """(class, hours drawn, hours awarded) for the project page's meters."""
        return [
            (cls, self.drawn.get(cls, Decimal(0)), Decimal(str(hours)))
            for cls, hours in sorted(self.allocation.budget.items())
        ]


def _projects(db: Session, actor: Principal) -> list[ProjectRow]:
    """Active top-level allocations with their public abstracts."""
    return [
        ProjectRow(a, abstract, POOL_LABELS.get(a.pool, a.pool), drawn)
        for a, abstract, drawn in allocation.awarded_projects(db, actor, limit=MAX_PROJECTS)
    ]


@dataclass(frozen=True)
class TrancheColumn:
    """One quarter of one class: the tranche as an outlined column, what it drew (settled)
    filled inside it, each with its number as text."""

    label: str
    released: str
    drawn: str
    current: bool
    x: float
    width: float
    tranche_y: float
    tranche_height: float
    drawn_y: float
    drawn_height: float
    overdrawn: bool


@dataclass(frozen=True)
class TrancheChart:
    width: int
    height: int
    top: Decimal  # the scale's top, in hours
    baseline: float
    columns: tuple[TrancheColumn, ...]


def tranche_chart(
    tranches: list[allocation.Tranche], *, width: int = 560, height: int = 190
) -> TrancheChart:
    """Hours drawn per quarter against each quarter's tranche, one column per quarter and
    class, on one scale (the largest tranche or draw)."""
    margin_top, margin_bottom = 20, 36
    plot = height - margin_top - margin_bottom
    # The tallest tranche or draw reaches the top; the numbers are written above each column.
    top = max((max(t.released, t.drawn) for t in tranches), default=Decimal(0))
    slot = width / max(len(tranches), 1)
    several = len({t.accelerator for t in tranches}) > 1
    baseline = margin_top + plot
    columns = []
    for i, t in enumerate(tranches):
        tranche_h = float(t.released / top) * plot if top else 0.0
        drawn_h = float(t.drawn / top) * plot if top else 0.0
        drawn_h = max(drawn_h, 1.5 if t.drawn else 0.0)  # a small draw stays visible
        columns.append(
            TrancheColumn(
                label=f"Q{t.quarter + 1}" + (f" {t.accelerator}" if several else ""),
                released=hours_text(t.released),
                drawn=hours_text(t.drawn),
                current=t.current,
                x=round(i * slot + slot * 0.2, 2),
                width=round(slot * 0.6, 2),
                tranche_y=round(baseline - tranche_h, 2),
                tranche_height=round(tranche_h, 2),
                drawn_y=round(baseline - drawn_h, 2),
                drawn_height=round(drawn_h, 2),
                overdrawn=t.drawn > t.released,
            )
        )
    return TrancheChart(width, height, top, baseline, tuple(columns))


@dataclass(frozen=True)
class ClassHours:
    accelerator: str
    awarded: Decimal
    used: Decimal
    reserved: Decimal

    @property
    def left(self) -> Decimal:
        return self.awarded - self.used - self.reserved


@dataclass(frozen=True)
class ProjectView:
    page: allocation.ProjectPage
    pool_label: str
    chart: TrancheChart | None
    classes: list[ClassHours]
    jobs: list[Any]
    outputs: list[Any]

    @property
    def budget(self) -> list[tuple[str, str]]:
        return budget_rows(self.page.allocation.budget)


def project_view(db: Session, actor: Principal, name: str) -> ProjectView:
    """A project's page: what the public may know, and for its members (and operators and
    auditors) its people, tranches, hours per class, jobs and outputs, each read through the
    service that owns it (allocation, compute, artifacts)."""
    page = allocation.project_page(db, actor, name)
    a = page.allocation
    jobs = compute.jobs_of_project(db, actor, name, limit=MAX_PROJECT_JOBS) if page.insider else []
    outputs = artifacts.project_outputs(db, actor, name, jobs=[str(j.id) for j in jobs])
    classes = [
        ClassHours(
            cls,
            Decimal(str(hours)),
            page.used.get(cls, Decimal(0)),
            page.reserved.get(cls, Decimal(0)),
        )
        for cls, hours in sorted(a.budget.items())
    ]
    return ProjectView(
        page,
        POOL_LABELS.get(a.pool, a.pool),
        tranche_chart(page.tranches) if page.tranches else None,
        classes if page.insider else [],
        jobs,
        outputs,
    )


@dataclass(frozen=True)
class MyWork:
    """What /me lists beside the account: the person's projects with their hours, the
    proposals they submitted with their status, and the reviews assigned to them."""

    projects: list[allocation.MyProject]
    proposals: list[tuple[Proposal, Call]]
    reviews: list[QueueItem]


def my_work(db: Session, actor: Principal) -> MyWork:
    reviews = review_queue(db, actor) if actor.has_role(Role.REVIEWER) else []
    return MyWork(allocation.my_projects(db, actor), allocation.my_proposals(db, actor), reviews)


# Pages -------------------------------------------------------------------------------------------


@router.get("/calls")
def calls(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    overview = calls_overview(db, viewer.principal)
    return render_page(request, viewer, "calls.html", nav="calls", overview=overview)


@router.get("/calls/{call_id}")
def call(request: Request, call_id: CallId, db: DbSession, viewer: CurrentViewer) -> Response:
    return _call_page(request, db, viewer, call_id, proposal_form_values(viewer.principal))


def _call_page(
    request: Request,
    db: Session,
    viewer: Viewer,
    call_id: int,
    values: ProposalFormValues,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    view = _call_view(allocation.get_call(db, viewer.principal, call_id), utcnow())
    principal = viewer.principal
    may_submit = viewer.signed_in and principal.has_role(Role.PI)
    return render_page(
        request,
        viewer,
        "call.html",
        status=status,
        nav="calls",
        view=view,
        may_submit=may_submit,
        institutions=identity.list_institutions(db, principal) if may_submit else [],
        values=values,
        levels=LEVELS,
        error=error,
    )


@router.post("/calls/{call_id}/proposals")
def submit_proposal(
    request: Request,
    call_id: CallId,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    title: Annotated[str, Form()] = "",
    abstract: Annotated[str, Form()] = "",
    institution_id: Annotated[str, Form()] = "",
    hours_class: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    hours: Annotated[list[str], Form()] = [],  # noqa: B006
    starts_on: Annotated[str, Form()] = "",
    ends_on: Annotated[str, Form()] = "",
    level: Annotated[str, Form()] = "1",
    datasets: Annotated[str, Form()] = "",
    models: Annotated[str, Form()] = "",
    weights: Annotated[bool, Form()] = False,
    data: Annotated[bool, Form()] = False,
    code: Annotated[bool, Form()] = False,
    licence: Annotated[str, Form()] = "",
) -> Response:
    allocation.get_call(db, viewer.principal, call_id)  # a missing call is a 404, not a form error
    typed = dict(zip(hours_class, hours, strict=False))
    values = ProposalFormValues(
        title=title,
        abstract=abstract,
        institution_id=institution_id,
        hours=typed,
        starts_on=starts_on,
        ends_on=ends_on,
        level=level,
        datasets=datasets,
        models=models,
        weights=weights,
        data=data,
        code=code,
        licence=licence,
    )
    body: dict[str, Any] = {
        "call_id": call_id,
        "institution_id": _id_or_raw(institution_id),
        "title": title,
        "abstract": abstract,
        # A class left empty is not asked for; the schema refuses a request for none.
        "requested": {cls: _hours_or_raw(h) for cls, h in typed.items() if h.strip()},
        "starts_on": starts_on or None,
        "ends_on": ends_on or None,
        "level": _id_or_raw(level),
        "datasets": _lines(datasets),
        "models": _lines(models),
        "release_plan": {"weights": weights, "data": data, "code": code, "licence": licence},
    }
    try:
        req = ProposalCreate.model_validate(body)
        proposal = allocation.submit_proposal(db, viewer.principal, req)
    except ValidationError as exc:
        return _call_page(request, db, viewer, call_id, values, error=_one_line(exc), status=422)
    except CommonlabError as exc:
        return _call_page(
            request, db, viewer, call_id, values, error=exc.message, status=exc.status
        )
    return RedirectResponse(f"/proposals/{proposal.id}?submitted=1", status_code=303)


@router.get("/proposals/{proposal_id}")
def proposal(
    request: Request,
    proposal_id: ProposalId,
    db: DbSession,
    viewer: CurrentViewer,
    submitted: Annotated[bool, Query()] = False,
    assigned: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    return _proposal_page(request, db, viewer, proposal_id, submitted=submitted, assigned=assigned)


def _proposal_page(
    request: Request,
    db: Session,
    viewer: Viewer,
    proposal_id: int,
    *,
    submitted: bool = False,
    assigned: int | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    found = allocation.get_proposal(db, viewer.principal, proposal_id)
    view = _call_view(allocation.get_call(db, viewer.principal, found.call_id), utcnow())
    institution = identity.get_institution(db, viewer.principal, found.institution_id)
    return render_page(
        request,
        viewer,
        "proposal.html",
        status=status,
        nav="calls",
        proposal=found,
        view=view,
        institution=institution,
        requested=budget_rows(found.requested),
        submitted=submitted and found.pi_id == viewer.principal.person_id,
        suggested=_suggested(db, viewer.principal, found),
        assigned=assigned,
        error=error,
    )


def _suggested(
    db: Session, actor: Principal, proposal: Proposal
) -> list[allocation.SuggestedReviewer] | None:
    """Reviewers to offer, for those who assign them (None for everyone else), while the
    proposal is still open to review."""
    if proposal.status not in {"submitted", "under_review"}:
        return None
    try:
        return allocation.suggested_reviewers(db, actor, proposal.id)
    except AccessDenied:
        return None


@router.post("/proposals/{proposal_id}/reviewers")
def assign_reviewer(
    request: Request,
    proposal_id: ProposalId,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    reviewer_id: Annotated[str, Form()] = "",
) -> Response:
    """Assign one reviewer, an explicit act; the service checks every conflict again."""
    chosen = _id_or_raw(reviewer_id)
    try:
        if not isinstance(chosen, int) or chosen < 1:
            raise InvalidInput("choose a reviewer from the list")
        allocation.assign_reviewer(db, viewer.principal, proposal_id, chosen)
    except (NotFound, AccessDenied):
        raise
    except CommonlabError as exc:
        return _proposal_page(
            request, db, viewer, proposal_id, error=exc.message, status=exc.status
        )
    return RedirectResponse(f"/proposals/{proposal_id}?assigned={chosen}#reviewers", 303)


@router.get("/reviews")
def reviews(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    scored: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    return _reviews_page(request, db, viewer, scored=scored)


def _reviews_page(
    request: Request,
    db: Session,
    viewer: Viewer,
    *,
    scored: int | None = None,
    error: tuple[int, str] | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        viewer,
        "reviews.html",
        status=status,
        nav="reviews",
        queue=review_queue(db, viewer.principal),
        is_reviewer=viewer.principal.has_role(Role.REVIEWER),
        scored=scored,
        error=error,
        typed=typed or {},
    )


@router.post("/reviews/{proposal_id}")
def score(
    request: Request,
    proposal_id: ProposalId,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    criterion: Annotated[list[str], Form()] = [],  # noqa: B006
    score: Annotated[list[str], Form()] = [],  # noqa: B006
    comment: Annotated[str, Form()] = "",
) -> Response:
    scores = dict(zip(criterion, score, strict=False))
    typed = {"proposal": proposal_id, "scores": scores, "comment": comment}
    try:
        req = ReviewCreate.model_validate(
            {"scores": {c: _id_or_raw(s) for c, s in scores.items()}, "comment": comment}
        )
        allocation.score_review(db, viewer.principal, proposal_id, req)
    except ValidationError as exc:
        return _reviews_page(
            request, db, viewer, error=(proposal_id, _one_line(exc)), typed=typed, status=422
        )
    except (NotFound, AccessDenied):
        raise  # a page of its own: the proposal is not (or no longer) in this reviewer's queue
    except CommonlabError as exc:
        return _reviews_page(
            request, db, viewer, error=(proposal_id, exc.message), typed=typed, status=exc.status
        )
    return RedirectResponse(f"/reviews?scored={proposal_id}#proposal-{proposal_id}", 303)


@router.get("/projects")
def projects(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    rows = _projects(db, viewer.principal)
    return render_page(
        request, viewer, "projects.html", nav="projects", rows=rows, limit=MAX_PROJECTS
    )


@router.get("/projects/{name}")
def project(request: Request, name: ProjectName, db: DbSession, viewer: CurrentViewer) -> Response:
    view = project_view(db, viewer.principal, name)
    return render_page(request, viewer, "project.html", nav="projects", view=view, hours=hours_text)


@router.get("/members")
def members(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    overview = shares_overview(db, viewer.principal)
    return render_page(request, viewer, "members.html", nav="members", overview=overview)
