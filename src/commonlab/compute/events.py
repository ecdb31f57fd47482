"""The record entries the compute domain writes."""

from __future__ import annotations

from enum import StrEnum

from commonlab.compute.rules import JobState

__all__ = ["ComputeEvent", "job_event"]


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
