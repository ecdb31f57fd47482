"""Portal pages for evaluations: the leaderboards (every task, then one task's board with a bar
chart of its primary metric). Server-rendered, no JavaScript; each shows only the evaluations
the viewer may see (the workloads service decides, by artifacts' read rule). A model
version's own scores are a section of its page (`artifacts_views.version_page`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from commonlab.http import DbSession
from commonlab.portal.pages import CurrentViewer, render_page
from commonlab.workloads import service as workloads
from commonlab.workloads.schemas import Standing

__all__ = ["ScoreBar", "ScoreChart", "router", "score_chart", "score_text"]

router = APIRouter(include_in_schema=False)

BOARD_SIZE = 50
CHART_BARS = 15
Task = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]


def score_text(value: float | None) -> str:
    """A score as a person reads it: four significant digits, no exponent below a million."""
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"


@dataclass(frozen=True)
class ScoreBar:
    label: str
    text: str
    y: float
    width: float
    value_x: float


@dataclass(frozen=True)
class ScoreChart:
    """Horizontal bars for scores, the best drawn full length; a score at or below zero gets
    no bar (its value is still written)."""

    width: int
    height: int
    label_width: int
    row: int
    bars: tuple[ScoreBar, ...]


def score_chart(
    data: Sequence[tuple[str, float]], *, width: int = 640, row: int = 28, label_width: int = 280
) -> ScoreChart:
    plot = width - label_width - 64  # room on the right for the value text
    best = max((value for _, value in data), default=0.0)
    bars = []
    for i, (label, value) in enumerate(data):
        length = plot * value / best if best > 0 and value > 0 else 0.0
        bars.append(
            ScoreBar(
                label=label if len(label) <= 40 else "…" + label[-39:],
                text=score_text(value),
                y=i * row + 4,
                width=round(max(length, 1.0 if value > 0 else 0.0), 2),
                value_x=round(label_width + length + 6, 2),
            )
        )
    return ScoreChart(width, max(len(data), 1) * row + 4, label_width, row, tuple(bars))


def _chart(standings: Sequence[Standing]) -> ScoreChart | None:
    ranked = [s for s in standings if s.score is not None][:CHART_BARS]
    if not ranked:
        return None
    return score_chart([(s.evaluation.model, s.score or 0.0) for s in ranked])


@router.get("/leaderboards")
def leaderboards(request: Request, db: DbSession, viewer: CurrentViewer) -> Response:
    found = workloads.tasks(db, viewer.principal)
    return render_page(
        request, viewer, "leaderboards.html", nav="leaderboards", tasks=found, score=score_text
    )


@router.get("/leaderboards/{task}")
def leaderboard(request: Request, task: Task, db: DbSession, viewer: CurrentViewer) -> Response:
    board = workloads.leaderboard(db, viewer.principal, task, limit=BOARD_SIZE)
    return render_page(
        request,
        viewer,
        "leaderboard.html",
        nav="leaderboards",
        board=board,
        chart=_chart(board.standings),
        limit=BOARD_SIZE,
        score=score_text,
    )
