"""Where a workload finds its inputs and leaves its outputs, inside the job's work folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Paths"]


@dataclass(frozen=True)
class Paths:
    data: Path  # the dataset version's files
    model: Path | None  # the base (or evaluated) model version's files, when there is one
    out: Path  # what the job publishes: a model in the Hugging Face layout, or a log
    scratch: Path  # checkpoints: kept when the job is cancelled, carried to a resubmission
    metrics: Path  # one JSON line per report, forwarded to the facility while the job runs
