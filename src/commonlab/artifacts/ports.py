"""The one answer artifacts needs from a domain above it: which inputs a facility job declared
(compute's to say), asked when a version names the job that made it. `wiring.connect()` plugs
compute in when a facility opens; unconnected, a version naming a facility job is refused."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from commonlab.errors import ConfigError
from commonlab.policy.principal import Principal

__all__ = ["JobInputs", "job_inputs", "provide_job_inputs"]

# (db, actor, job id) → the version references that job of `actor`'s declared as inputs, or
# None when `actor` has no such job. In the caller's transaction.
JobInputs = Callable[[Session, Principal, int], "list[str] | None"]

_job_inputs: JobInputs | None = None


def provide_job_inputs(answer: JobInputs) -> None:
    """Connect the port (idempotent: connecting the same answer again changes nothing)."""
    global _job_inputs
    _job_inputs = answer


def job_inputs(db: Session, actor: Principal, job_id: int) -> list[str] | None:
    """What job `job_id` of `actor`'s declared as inputs, or None when it is not theirs."""
    if _job_inputs is None:
        raise ConfigError(
            "artifacts: nothing answers which inputs a job declared (the job-inputs port is "
            "not connected: commonlab.wiring.connect() connects it when a facility opens), so "
            "a version that names a facility job cannot be checked and is refused"
        )
    return _job_inputs(db, actor, job_id)
