"""Workload tables: the configuration each workload job was admitted with, and the
evaluations evaluate jobs published.

A workload is a compute job (its row in `compute_jobs` holds the command, the level, the
hours); this table adds what the job was asked to do, so the job can read its own
configuration back and a reader can see what trained a model, not just that a job ran."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["Evaluation", "Workload"]


class Workload(Base):
    __tablename__ = "workloads"

    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the configuration's canonical JSON: what the record names.
    config_sha256: Mapped[str] = mapped_column(String(64))
    # Version references (`datasets/ns/name@3`), and the repository the output goes to.
    dataset: Mapped[str | None] = mapped_column(String(300))
    model: Mapped[str | None] = mapped_column(String(300))
    out: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Evaluation(Base):
    """One evaluation of one model version on one task: its scores, how many samples, the
    Merkle root of the per-sample hashes (on the record), and the version that holds its
    log (published by the evaluate job beside the model)."""

    __tablename__ = "workloads_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), unique=True)
    task: Mapped[str] = mapped_column(String(80), index=True)
    harness: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(300), index=True)
    dataset: Mapped[str] = mapped_column(String(300))
    log: Mapped[str | None] = mapped_column(String(300))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    samples: Mapped[int] = mapped_column(Integer)
    sample_root: Mapped[str] = mapped_column(String(64))
    # Copied from the model's version when published, so a leaderboard filters by what a
    # reader may see without asking artifacts row by row.
    level: Mapped[int] = mapped_column(Integer)
    project: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
