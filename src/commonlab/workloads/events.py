"""The record entries the workloads domain writes, and what each may say in clear.

A workload's admission names its kind and the hash of its configuration; the configuration
itself is a commitment (it may name private data). An evaluation of a model the public may
read is public in full: its scores and the Merkle root of its per-sample hashes, so anyone
holding the log can prove a published score came from it. Of a contained model's evaluation
the record holds only commitments (committing a public field is always allowed)."""

from __future__ import annotations

from enum import StrEnum

from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "WorkloadEvent"]


class WorkloadEvent(StrEnum):
    WorkloadAdmitted = "workloads:workload:admitted"
    EvaluationPublished = "workloads:evaluation:published"


FIELDS = declare(
    WorkloadEvent,
    {
        WorkloadEvent.WorkloadAdmitted: Fields(
            "kind",
            "config_sha256",
            "dataset",
            "model",
            private=("config", "inputs_private", "out"),
            about="a train, fine-tune or evaluate job admitted: its kind, inputs and config hash",
        ),
        WorkloadEvent.EvaluationPublished: Fields(
            "job",
            "task",
            "harness",
            "model",
            "dataset",
            "log",
            "metrics",
            "samples",
            "sample_root",
            about="an evaluation's scores, and the Merkle root of its per-sample hashes",
        ),
    },
)
