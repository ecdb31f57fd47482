"""Portal pages for training-data search: find a passage in a model's training data or in a
dataset version's records (each hit in context, linked to its record with its source and
licence), trace a model's output to the spans it shares verbatim with that data, and the
opt-outs (the list, filing one, one opt-out with the models trained on what it names, an
operator's decision).

Server-rendered, no JavaScript. Views call `datasearch.service` as the viewer and render its
answer; its refusals (no index yet, an index still building, bad input) are shown on the page
that asked, with their status, so the form stays there to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from commonlab.datasearch import service
from commonlab.datasearch.schemas import (
    MAX_PASSAGE_CHARS,
    DatasetSearched,
    HitOut,
    OptOutCreate,
    OptOutDecision,
    OptOutKind,
    OptOutOut,
    SearchOut,
    SemanticOut,
    SpanOut,
    TraceOut,
)
from commonlab.errors import AccessDenied, CommonlabError, InvalidInput, NotFound, field_and_reason
from commonlab.http import DbSession
from commonlab.policy.principal import Principal, Role, Scope
from commonlab.portal.charts import BarChart, row_chart
from commonlab.portal.errors import PortalError
from commonlab.portal.pages import CheckedForm, CurrentViewer, Viewer, render_page

__all__ = [
    "Segment",
    "StatusLine",
    "in_context",
    "marked_segments",
    "router",
    "status_line",
    "version_url",
    "web_url",
]

router = APIRouter(include_in_schema=False)

HITS_SHOWN = 20
OPTOUTS_PER_PAGE = 50
# What the address may carry: the service says what is too long for a query; past this the
# request is junk, refused before anything runs.
MAX_QUERY_FIELD = 8 * MAX_PASSAGE_CHARS
MAX_REF = 300
MAX_FORM_TEXT = 100_000
MAX_ID = 2**53
OptOutId = Annotated[int, Path(ge=1, le=MAX_ID)]
Ref = Annotated[str | None, Query(max_length=MAX_REF)]
# A chart of occurrences per dataset is drawn only when there is more than one to compare.
CHART_LABEL = 44


# What the pages show, as pure functions ---------------------------------------------------------


def version_url(ref: str) -> str:
    """The portal page of a version reference: `datasets/ns/name@3` → its version page."""
    repo, _, number = ref.rpartition("@")
    return f"/artifacts/{repo}/versions/{number}"


def web_url(text: str | None) -> str | None:
    """`text` when it is a web address a link may lead to (a record's source is data: any
    other scheme, javascript: included, is shown as text only)."""
    if text and text.startswith(("https://", "http://")) and not any(c.isspace() for c in text):
        return text
    return None


@dataclass(frozen=True)
class StatusLine:
    """How one dataset version fared in a search: `command` builds its missing index."""

    dataset: str
    status: str
    text: str
    command: str | None = None


def status_line(searched: DatasetSearched, *, counted: bool = True) -> StatusLine:
    """One line per dataset version; `counted`: the answer counted occurrences in it (a
    search does, a trace counts per span)."""
    if searched.status == "searched":
        noun = "occurrence" if searched.count == 1 else "occurrences"
        count = f"{searched.count:,} {noun}, " if counted else "searched, "
        return StatusLine(searched.dataset, "searched", f"{count}in index {searched.index}")
    if searched.status == "building":
        return StatusLine(
            searched.dataset,
            "building",
            f"its index is being built by job {searched.job}: search again when it ends",
        )
    if searched.status == "no semantic index":
        return StatusLine(
            searched.dataset,
            "no index",
            f"its index {searched.index} searches only verbatim; index it by meaning too with",
            f"commonlab index build {searched.dataset} -p PROJECT",
        )
    return StatusLine(
        searched.dataset,
        "no index",
        "not indexed yet, so not searched; build its index with",
        f"commonlab index build {searched.dataset} -p PROJECT",
    )


def _occurrence_chart(found: SearchOut) -> BarChart | None:
    searched = [d for d in found.datasets if d.status == "searched"]
    if len(searched) < 2:
        return None
    return row_chart([(_short(d.dataset), d.count) for d in searched], width=640, label_width=320)


def _short(label: str) -> str:
    return label if len(label) <= CHART_LABEL else "…" + label[-(CHART_LABEL - 1) :]


def in_context(hit: HitOut) -> tuple[str, str, str]:
    """A hit's text before, matched and after, with the match's own edge spaces moved out of
    it (a tokenizer folds the space before a word into the word), so the mark covers the
    passage alone."""
    match = hit.match.strip()
    if not match:
        return hit.before, hit.match, hit.after
    lead = hit.match[: len(hit.match) - len(hit.match.lstrip())]
    trail = hit.match[len(hit.match.rstrip()) :]
    return hit.before + lead, match, trail + hit.after


@dataclass(frozen=True)
class Segment:
    """A piece of a traced text: `span` is the number (from 1, as the table numbers them) of
    the span found verbatim that it is, or None for text found nowhere."""

    text: str
    span: int | None = None


def marked_segments(text: str, spans: Sequence[SpanOut]) -> list[Segment]:
    """`text` cut at the spans found verbatim in the training data. The service's offsets are
    on the text as it traced it (stripped); where spans overlap, the first to start is marked
    and the other stays in the table. A span whose offsets do not hold its text is skipped."""
    text = text.strip()
    ordered = sorted(enumerate(spans, 1), key=lambda pair: (pair[1].start, -pair[1].end))
    segments: list[Segment] = []
    at = 0
    for number, span in ordered:
        if span.start < at or text[span.start : span.end] != span.text or not span.text:
            continue
        if at < span.start:
            segments.append(Segment(text[at : span.start]))
        segments.append(Segment(span.text, number))
        at = span.end
    if at < len(text):
        segments.append(Segment(text[at:]))
    return segments


_FORM_LABELS = {
    "kind": "What to opt out",
    "value": "The passage, digest or pattern",
    "decision": "Decision",
    "reason": "Reason",
}


def _one_line(exc: ValidationError) -> str:
    """The first problem of a form, naming the field as the form labels it."""
    field, reason = field_and_reason(exc.errors()[0])
    label = _FORM_LABELS.get(field.split(".")[0], field)
    return f"{label}: {reason}" if label else reason


def _may_decide(principal: Principal) -> bool:
    """Whether to offer the decision form (the service decides again when it is sent)."""
    return principal.has_role(Role.OPERATOR) and principal.has_scope(Scope.ADMIN)


# Search -----------------------------------------------------------------------------------------


def _where(ref: str | None, model: str | None, dataset: str | None) -> dict[str, str]:
    """The version a search names: `model=` or `dataset=` from a link, or the form's one
    field `ref`, whose prefix says which."""
    named = {k: v.strip() for k, v in (("model", model), ("dataset", dataset)) if v and v.strip()}
    if ref and ref.strip():
        ref = ref.strip()
        if ref.startswith("models/"):
            named.setdefault("model", ref)
        elif ref.startswith("datasets/"):
            named.setdefault("dataset", ref)
        else:
            raise InvalidInput(
                f"{ref!r}: name a model version (models/ns/name@3) or a dataset version "
                "(datasets/ns/name@3)"
            )
    if len(named) > 1:
        raise InvalidInput("name one version to search: a model or a dataset, not both")
    return named


@router.get("/search")
def search_page(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_FIELD)] = None,
    ref: Ref = None,
    model: Ref = None,
    dataset: Ref = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_HITS_SHOWN)] = HITS_SHOWN,
    mode: Annotated[str, Query(pattern="^(verbatim|meaning)$")] = "verbatim",
) -> Response:
    """The search form, and what it found when it names a passage and a version: every
    verbatim occurrence, or (mode=meaning) the records nearest in meaning."""
    found: SearchOut | None = None
    near: SemanticOut | None = None
    error: str | None = None
    status = 200
    where: dict[str, str] = {}
    try:
        where = _where(ref, model, dataset)
        if q is not None and not where:
            raise InvalidInput(
                "name the model (models/ns/name@3) or dataset version (datasets/ns/name@3) "
                "to search"
            )
        if q is not None and where and mode == "meaning":
            near = service.semantic_search(
                db, viewer.principal, request.app.state.artifacts, query=q, limit=limit, **where
            )
        elif q is not None and where:
            found = service.search(
                db, viewer.principal, request.app.state.artifacts, query=q, limit=limit, **where
            )
    except CommonlabError as exc:
        error, status = exc.message, exc.status
    target = where.get("model") or where.get("dataset") or (ref or "").strip()
    return render_page(
        request,
        viewer,
        "search.html",
        status=status,
        nav="search",
        q=q or "",
        target=target,
        in_model="model" in where,
        found=found,
        near=near,
        mode=mode,
        statuses=[status_line(d, counted=found is not None) for d in (found or near).datasets]
        if found or near
        else [],
        chart=_occurrence_chart(found) if found else None,
        limit=limit,
        more_limit=service.MAX_HITS_SHOWN,
        error=error,
        in_context=in_context,
        version_url=version_url,
        web_url=web_url,
    )


# Trace ------------------------------------------------------------------------------------------


def _trace_page(
    request: Request,
    viewer: Viewer,
    *,
    model: str,
    text: str,
    traced: TraceOut | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        viewer,
        "trace.html",
        status=status,
        nav="search",
        model=model,
        text=text,
        traced=traced,
        segments=marked_segments(text, traced.spans) if traced else [],
        statuses=[status_line(d, counted=False) for d in traced.datasets] if traced else [],
        error=error,
        version_url=version_url,
    )


@router.get("/trace")
def trace_form(
    request: Request, viewer: CurrentViewer, model: Annotated[str, Query(max_length=MAX_REF)] = ""
) -> Response:
    return _trace_page(request, viewer, model=model, text="")


@router.post("/trace")
def trace(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    model: Annotated[str, Form(max_length=MAX_REF)] = "",
    text: Annotated[str, Form(max_length=MAX_FORM_TEXT)] = "",
) -> Response:
    """Trace a model's output (a POST: the text may be pages long, and an address keeps it)."""
    model = model.strip()
    try:
        if not model:
            raise InvalidInput("name the model version whose output this is (models/ns/name@3)")
        traced = service.trace(
            db, viewer.principal, request.app.state.artifacts, model=model, text=text
        )
    except CommonlabError as exc:
        return _trace_page(
            request, viewer, model=model, text=text, error=exc.message, status=exc.status
        )
    return _trace_page(request, viewer, model=model, text=text, traced=traced)


# Opt-outs ---------------------------------------------------------------------------------------


def _optouts_page(
    request: Request,
    db: DbSession,
    viewer: Viewer,
    *,
    before: int | None = None,
    typed: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    optouts, older = service.list_optouts(
        db, viewer.principal, after=before, limit=OPTOUTS_PER_PAGE
    )
    return render_page(
        request,
        viewer,
        "optouts.html",
        status=status,
        nav="search",
        optouts=optouts,
        older=older,
        before=before,
        kinds=[kind.value for kind in OptOutKind],
        typed=typed or {"kind": OptOutKind.PASSAGE.value, "value": ""},
        error=error,
    )


@router.get("/optouts")
def optouts(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Every opt-out, newest first; a signed-in person also sees the form to file one."""
    return _optouts_page(request, db, viewer, before=before)


@router.post("/optouts")
def file_optout(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    kind: Annotated[str, Form(max_length=20)] = "",
    value: Annotated[str, Form(max_length=MAX_FORM_TEXT)] = "",
) -> Response:
    if not viewer.signed_in:
        raise PortalError(401, "sign in to file an opt-out: only a person may file one")
    typed = {"kind": kind, "value": value}
    try:
        req = OptOutCreate.model_validate({"kind": kind, "value": value})
        filed = service.file_optout(db, viewer.principal, request.app.state.artifacts, req)
    except ValidationError as exc:
        return _optouts_page(request, db, viewer, typed=typed, error=_one_line(exc), status=422)
    except CommonlabError as exc:
        return _optouts_page(request, db, viewer, typed=typed, error=exc.message, status=exc.status)
    return RedirectResponse(f"/optouts/{filed.id}?filed=1", status_code=303)


def _optout_page(
    request: Request,
    viewer: Viewer,
    optout: OptOutOut,
    *,
    notice: str | None = None,
    typed: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    return render_page(
        request,
        viewer,
        "optout.html",
        status=status,
        nav="search",
        optout=optout,
        # The service counts and lists only matches the viewer may read, and lists at most
        # MAX_HITS_SHOWN of them.
        hidden=optout.records - len(optout.matches),
        may_decide=optout.state == "filed" and _may_decide(viewer.principal),
        notice=notice,
        typed=typed or {"decision": "", "reason": ""},
        error=error,
        version_url=version_url,
    )


def _notice(optout: OptOutOut, *, filed: bool, decided: bool) -> str | None:
    """What the address says happened, confirmed by the opt-out itself: a notice of filing
    only for who may see what it names (who filed it), of a decision only once decided."""
    if filed and optout.value is not None:
        return "filed"
    if decided and optout.state != "filed":
        return "decided"
    return None


@router.get("/optouts/{optout_id}")
def optout(
    request: Request,
    optout_id: OptOutId,
    db: DbSession,
    viewer: CurrentViewer,
    filed: Annotated[bool, Query()] = False,
    decided: Annotated[bool, Query()] = False,
) -> Response:
    found = service.get_optout(db, viewer.principal, optout_id)
    return _optout_page(request, viewer, found, notice=_notice(found, filed=filed, decided=decided))


@router.post("/optouts/{optout_id}/decision")
def decide(
    request: Request,
    optout_id: OptOutId,
    db: DbSession,
    viewer: CurrentViewer,
    _: CheckedForm,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=MAX_FORM_TEXT)] = "",
) -> Response:
    """An operator upholds or rejects an opt-out; anyone else is refused by the service."""
    typed = {"decision": decision, "reason": reason}
    try:
        req = OptOutDecision.model_validate({"decision": decision, "reason": reason})
        service.decide_optout(db, viewer.principal, optout_id, req)
    except ValidationError as exc:
        error, status = _one_line(exc), 422
    except (NotFound, AccessDenied):
        raise  # a page of its own: there is no such opt-out, or this is not the viewer's to do
    except CommonlabError as exc:
        error, status = exc.message, exc.status
    else:
        return RedirectResponse(f"/optouts/{optout_id}?decided=1", status_code=303)
    found = service.get_optout(db, viewer.principal, optout_id)
    return _optout_page(request, viewer, found, typed=typed, error=error, status=status)
