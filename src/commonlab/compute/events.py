"""The record entries the compute domain writes, and what each may say in clear.

The fleet, admissions and the hours they hold are public. A job's command and environment
are not, nor are the names of inputs that are not public: the public sees its public inputs
in clear and only a commitment to the others (`inputs_private`).
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.compute.rules import JobState
from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "ComputeEvent", "job_event"]


class ComputeEvent(StrEnum):
    FleetApplied = "compute:fleet:applied"
    PartitionCertified = "compute:partition:certified"
    NodeState = "compute:node:state"
    AccountsSynced = "compute:accounts:synced"
    FairshareAdjusted = "compute:fairshare:adjusted"
    JobAdmitted = "compute:job:admitted"
    JobQueued = "compute:job:queued"
    JobRunning = "compute:job:running"
    JobSucceeded = "compute:job:succeeded"
    JobFailed = "compute:job:failed"
    JobCancelRequested = "compute:job:cancel_requested"
    JobCancelled = "compute:job:cancelled"
    JobTimedOut = "compute:job:timed_out"
    JobRefused = "compute:job:refused"


def job_event(state: JobState) -> ComputeEvent:
    """Every job state has its own entry type: `compute:job:<state>`."""
    return ComputeEvent(f"compute:job:{state}")


# Every later state of a job says the same kinds of things (compute/service.py: _enter, _finish).
_JOB_STATE = Fields("project", "reason", "charged_hours", "elapsed_seconds", "exit_code")

FIELDS = declare(
    ComputeEvent,
    {
        ComputeEvent.FleetApplied: Fields(
            "sites",
            "partitions",
            "accelerators",
            "nodes_added",
            "nodes_removed",
            "document_sha256",
            "local",
        ),
        ComputeEvent.PartitionCertified: Fields("from", "to", "motion"),
        ComputeEvent.NodeState: Fields("from", "to"),
        ComputeEvent.AccountsSynced: Fields("changes", "drift", "force", "accounts"),
        ComputeEvent.FairshareAdjusted: Fields(
            "window_days", "fairshare", "delivered_hours", "fair_hours"
        ),
        ComputeEvent.JobAdmitted: Fields(
            "project",
            "allocation",
            "partition",
            "class",
            "accelerators",
            "nodes",
            "level",
            "reserved_hours",
            "inputs",
            "resubmit_of",
            private=("command", "env", "inputs_private"),
        ),
        ComputeEvent.JobCancelRequested: Fields("project", "state"),
        ComputeEvent.JobQueued: _JOB_STATE,
        ComputeEvent.JobRunning: _JOB_STATE,
        ComputeEvent.JobSucceeded: _JOB_STATE,
        ComputeEvent.JobFailed: _JOB_STATE,
        ComputeEvent.JobCancelled: _JOB_STATE,
        ComputeEvent.JobTimedOut: _JOB_STATE,
        ComputeEvent.JobRefused: _JOB_STATE,
    },
)
