"""The workloads book: which train, fine-tune and evaluate jobs the record says were admitted
(with the hash of their configuration), and every published evaluation's scores and the
Merkle root of its samples; compared with the facility's public evaluations.

An evaluation of a model anyone may read is public in full on the record, so a score on a
model's page or a leaderboard must be the one its entry holds, with the same sample root
that lets anyone holding the log prove the score came from it. An evaluation of a contained
model is on the record as commitments only: the audit counts it and says it cannot open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads
from commonlab.workloads.events import WorkloadEvent

__all__ = ["WorkloadsBook"]

# What an evaluation's entry and the facility's evaluation both say, compared field by field.
EVALUATION_FIELDS = ("task", "harness", "model", "dataset", "log", "metrics", "samples")


@dataclass(frozen=True)
class Workload:
    job: str  # job/<id>
    kind: str
    config_sha256: str


class WorkloadsBook(Book):
    name = "workloads"

    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}
        self.evaluations: dict[int, dict[str, Any]] = {}  # id → the entry's data, public ones
        self.committed_evaluations = 0
        self.problems: list[tuple[str, Any, Any]] = []  # (claim, the record, what it implies)

    @reads(WorkloadEvent.WorkloadAdmitted)
    def workload_admitted(self, entry: Entry) -> None:
        """Which jobs ran a built-in workload, of which kind, under which configuration hash."""
        self.workloads[entry.subject] = Workload(
            entry.subject, entry.data["kind"], entry.data["config_sha256"]
        )

    @reads(WorkloadEvent.EvaluationPublished)
    def evaluation_published(self, entry: Entry) -> None:
        """Each public evaluation's task, harness, model, dataset, log, scores, sample count and
        sample root, made by a job admitted as an `evaluate` workload."""
        if _committed(entry.data.get("task")):
            self.committed_evaluations += 1
            return
        self.evaluations[int(entry.subject_id)] = entry.data
        job = entry.data.get("job")
        workload = self.workloads.get(job)
        kind = workload.kind if workload else None
        if kind != "evaluate":
            self.problems.append((f"{entry.subject} made by {job}", kind, "evaluate"))

    def compare(self, published: Published, findings: Findings) -> None:
        for claim, recorded, implied in self.problems:
            findings.compare(self.name, claim, implied, recorded)
        if self.committed_evaluations:
            findings.rests_on_commitments(
                f"{self.committed_evaluations} evaluation(s) of contained models: "
                "their scores are commitments"
            )
        shown = {e["id"]: e for e in published.pages("/api/v1/evaluations")}
        findings.compare(self.name, "public evaluations", sorted(self.evaluations), sorted(shown))
        for evaluation_id, recorded in sorted(self.evaluations.items()):
            facility = shown.get(evaluation_id)
            if facility is None:
                continue  # named by the comparison of the list above
            for field in EVALUATION_FIELDS:
                findings.compare(
                    self.name,
                    f"evaluation/{evaluation_id} {field}",
                    recorded.get(field),
                    facility.get(field),
                )
            findings.compare(
                self.name,
                f"evaluation/{evaluation_id} sample_root",
                recorded.get("sample_root"),
                facility.get("sample_root"),
            )
            findings.compare(
                self.name,
                f"evaluation/{evaluation_id} job",
                recorded.get("job"),
                f"job/{facility.get('job')}",
            )


def _committed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"commitment"}
