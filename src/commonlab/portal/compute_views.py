"""Portal pages for compute: the fleet's capacity and current use per site and partition (a
chart: people would rather see a full partition than read its numbers), the jobs of the
projects one belongs to, and one job with its history, the curves of the metrics it posted
(loss, learning rate, throughput), its output and a cancel button.

Every read and change goes through compute.service; no page needs JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from commonlab.compute import service
from commonlab.compute.schemas import CHECKPOINT_METRIC, JobState
from commonlab.errors import AccessDenied, CommonlabError
from commonlab.http import MAX_ID, DbSession
from commonlab.portal.errors import PortalError
from commonlab.portal.pages import CheckedForm, CurrentViewer, render_page

if TYPE_CHECKING:
    from commonlab.compute.models import Job

__all__ = ["FleetBar", "MetricChart", "fleet_bars", "metric_chart", "router"]

router = APIRouter(include_in_schema=False)
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
LOG_TAIL = 16_384
MAX_JOBS = 200


@dataclass(frozen=True)
class FleetBar:
    """One partition as a horizontal bar: in use, idle and out of service, in SVG units."""

    name: str
    site: str
    label: str
    y: float
    used_w: float
    idle_w: float
    down_w: float
    used: int
    up: int
    total: int
    level: int


def fleet_bars(partitions: list[dict[str, Any]], *, width: float = 420) -> list[FleetBar]:
    """Bars on one scale (the largest partition spans the width), so sizes compare at a glance."""
    largest = max((p["accelerators"] for p in partitions), default=0) or 1
    bars = []
    for i, p in enumerate(partitions):
        scale = width / largest
        used = min(p["accelerators_in_use"], p["accelerators_up"])
        bars.append(
            FleetBar(
                name=p["name"],
                site=p["site"],
                label=f"{p['name']} · {p['accelerator']}",
                y=i * 34,
                used_w=round(used * scale, 2),
                idle_w=round((p["accelerators_up"] - used) * scale, 2),
                down_w=round((p["accelerators"] - p["accelerators_up"]) * scale, 2),
                used=p["accelerators_in_use"],
                up=p["accelerators_up"],
                total=p["accelerators"],
                level=p["certified_level"],
            )
        )
    return bars


# The conventional names a workload posts, charted first and named in words.
METRIC_LABELS = {
    "loss": "Loss",
    "learning_rate": "Learning rate",
    "tokens_per_second": "Tokens per second",
    "grad_norm": "Gradient norm",
    CHECKPOINT_METRIC: "Checkpoints (step saved)",
}
MAX_CHARTS = 8


def metric_text(value: float) -> str:
    """A metric's value as people read it: four significant digits (2.313, 0.0003, 1.2e+04)."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class MetricChart:
    """One metric over a job's run as a small line chart, in SVG units, with its numbers
    as text (the first, lowest, highest and latest values) for those who do not see it."""

    name: str
    label: str
    width: int
    height: int
    left: int
    top: int  # the plot's top edge (the metric's name sits above it)
    bottom: float  # the x axis's y
    right: float  # the plot's right edge
    path: str
    last_x: float
    last_y: float
    y_ticks: tuple[tuple[float, str], ...]  # (y, value)
    x_ticks: tuple[tuple[float, str], ...]  # (x, step)
    first_value: str
    low: str
    high: str
    latest: str
    latest_step: int
    points: tuple[tuple[int, str], ...]  # (step, value), what the line is drawn through


def metric_chart(curve: service.Curve, *, width: int = 320, height: int = 170) -> MetricChart:
    """A curve on its own scale (from its lowest to its highest value), steps along x."""
    # Room on the left for a value like 0.0002735, above for the metric's name.
    left, right, top, bottom = 66, 12, 24, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    steps = [step for step, _ in curve.points]
    values = [value for _, value in curve.points]
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or abs(high) * 0.1 or 1.0
    bottom_value, top_value = low - pad, high + pad
    first_step, last_step = steps[0], steps[-1]

    def x_of(step: int) -> float:
        if last_step == first_step:
            return round(left + plot_w / 2, 2)
        return round(left + (step - first_step) * plot_w / (last_step - first_step), 2)

    def y_of(value: float) -> float:
        return round(top + plot_h - (value - bottom_value) * plot_h / (top_value - bottom_value), 2)

    xy = [(x_of(step), y_of(value)) for step, value in curve.points]
    path = "M" + " L".join(f"{x},{y}" for x, y in xy)
    x_ticks = ((x_of(first_step), str(first_step)),)
    if last_step != first_step:
        x_ticks += ((x_of(last_step), str(last_step)),)
    y_ticks = ((y_of(high), metric_text(high)),)
    if high != low:
        y_ticks += ((y_of(low), metric_text(low)),)
    return MetricChart(
        name=curve.name,
        label=METRIC_LABELS.get(curve.name, curve.name),
        width=width,
        height=height,
        left=left,
        top=top,
        bottom=top + plot_h,
        right=width - right,
        path=path,
        last_x=xy[-1][0],
        last_y=xy[-1][1],
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        first_value=metric_text(values[0]),
        low=metric_text(low),
        high=metric_text(high),
        latest=metric_text(curve.latest.value),
        latest_step=curve.latest.step,
        points=tuple((step, metric_text(value)) for step, value in curve.points),
    )


@router.get("/fleet")
def fleet(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    overview = service.fleet_overview(db, viewer.principal)
    return render_page(
        request,
        viewer,
        "fleet.html",
        nav="fleet",
        fleet=overview,
        bars=fleet_bars(overview["partitions"]),
    )


@router.get("/jobs")
def jobs(
    request: Request,
    db: DbSession,
    viewer: CurrentViewer,
    project: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    if not viewer.signed_in:
        return RedirectResponse("/signin", status_code=303)
    try:
        rows = service.newest_jobs(db, viewer.principal, project=project or None, limit=MAX_JOBS)
    except AccessDenied as exc:
        raise PortalError(403, exc.message) from None
    with db.begin():
        names = service.partition_names(db)
    return render_page(
        request,
        viewer,
        "jobs.html",
        nav="jobs",
        rows=rows,
        partitions=names,
        project=project or "",
        projects=sorted(viewer.principal.projects),
        limit=MAX_JOBS,
        counts=_counts(rows),
    )


def _counts(rows: list[Job]) -> dict[str, int]:
    counts = {state.value: 0 for state in JobState}
    for row in rows:
        counts[row.state] += 1
    return {state: n for state, n in counts.items() if n}


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: JobId, db: DbSession, viewer: CurrentViewer) -> Response:
    try:
        found = service.get_job(db, viewer.principal, job_id)
    except CommonlabError as exc:
        raise PortalError(exc.status, exc.message) from None
    root = request.app.state.facility.settings.jobs_path
    stdout = service.log_chunk(found, "stdout", None, LOG_TAIL, root)
    stderr = service.log_chunk(found, "stderr", None, LOG_TAIL, root)
    with db.begin():
        history = service.job_history(db, found)
        partition = service.partition_names(db)[found.partition_id]
    curves = service.metric_curves(
        db, viewer.principal, job_id, first=tuple(METRIC_LABELS), most=MAX_CHARTS
    )
    return render_page(
        request,
        viewer,
        "job.html",
        nav="jobs",
        job=found,
        partition=partition,
        history=history,
        stdout=stdout.data.decode("utf-8", errors="replace"),
        stdout_cut=stdout.size > len(stdout.data),
        stderr=stderr.data.decode("utf-8", errors="replace"),
        ended=stdout.finished,  # the job is in a final state
        charts=[metric_chart(curve) for curve in curves],
    )


@router.post("/jobs/{job_id}/cancel")
def cancel(
    request: Request, job_id: JobId, db: DbSession, viewer: CurrentViewer, _: CheckedForm
) -> Response:
    try:
        service.cancel_job(db, viewer.principal, job_id)
    except CommonlabError as exc:
        raise PortalError(exc.status, exc.message) from None
    controller = getattr(request.app.state, "jobs", None)
    if controller is not None:
        controller.wake()
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
