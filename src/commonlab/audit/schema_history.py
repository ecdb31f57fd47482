"""The entry schemas as they stood at each past version, so that what every version changed
is derived from code, never written by hand (docs/record.md prints it).

An entry's envelope says which version wrote it (`schema`; none means 1). When a version is
superseded, its declarations are copied here as they were (public fields, and the fields only
ever committed), and the current version is whatever the domains' `events.py` declare now.
The audit reads older entries by these: a field an entry's version did not have is absent,
never a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ENVELOPE_SINCE", "PAST_SCHEMAS", "PastFields"]


@dataclass(frozen=True)
class PastFields:
    """One event type's data fields at a past version: in clear, and only committed."""

    public: frozenset[str]
    private: frozenset[str]


def _fields(public: str, *, private: str = "") -> PastFields:
    return PastFields(frozenset(public.split()), frozenset(private.split()))


# Version 1: every entry written before issue 17 (the declarations at commit e7eaa2f).
_SCHEMA_1 = {
    "allocation:allocation:approved": _fields("motion"),
    "allocation:allocation:granted": _fields(
        "budget country ends_on members pool project starts_on status title"
    ),
    "allocation:allocation:sub_allocated": _fields("budget parent project"),
    "allocation:call:opened": _fields("budget closes_at opens_at pool pool_percent title"),
    "allocation:conflict:declared": _fields("", private="reason with"),
    "allocation:ledger:released": _fields("class hours job ledger reservation"),
    "allocation:ledger:reserved": _fields("class hours job ledger"),
    "allocation:ledger:settled": _fields("class hours job ledger reservation"),
    "allocation:project:member_added": _fields("member"),
    "allocation:proposal:decided": _fields("decision score"),
    "allocation:proposal:submitted": _fields("call level requested", private="abstract title"),
    "allocation:reply:given": _fields("", private="text"),
    "allocation:review:assigned": _fields("reviewer"),
    "allocation:review:submitted": _fields("reviewer", private="comment scores"),
    "artifacts:dataset:published": _fields(
        "bytes commit files job key level licenses lineage signature statement_sha256",
        private="lineage_private",
    ),
    "artifacts:file:download-refused": _fields("level", private="path reason"),
    "artifacts:file:downloaded": _fields("level", private="path sha256"),
    "artifacts:model:published": _fields(
        "bytes commit files job key level licenses lineage signature statement_sha256",
        private="lineage_private",
    ),
    "artifacts:repo:created": _fields("kind level repository visibility"),
    "artifacts:store:collected": _fields("bytes expired_uploads removed"),
    "artifacts:tag:created": _fields("commit from tag version"),
    "artifacts:tag:moved": _fields("commit from tag version"),
    "artifacts:version:read": _fields("level"),
    "compute:accounts:synced": _fields("accounts changes drift force"),
    "compute:fairshare:adjusted": _fields("delivered_hours fair_hours fairshare window_days"),
    "compute:fleet:applied": _fields(
        "accelerators document_sha256 local nodes_added nodes_removed partitions sites"
    ),
    "compute:job:admitted": _fields(
        "accelerators allocation class inputs level partition project reserved_hours resubmit_of",
        private="command env inputs_private",
    ),
    "compute:job:cancel_requested": _fields("project state"),
    "compute:job:cancelled": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:failed": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:queued": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:refused": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:running": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:succeeded": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:job:timed_out": _fields("charged_hours elapsed_seconds exit_code project reason"),
    "compute:node:state": _fields("from to"),
    "compute:partition:certified": _fields("from motion to"),
    "governance:council:founded": _fields("members scale"),
    "governance:delegate:appointed": _fields("delegate name"),
    "governance:delegate:ended": _fields("delegate name"),
    "governance:member:admitted": _fields("motion name"),
    "governance:member:removed": _fields("motion"),
    "governance:motion:decided": _fields("closed_early outcome roll_call status"),
    "governance:motion:tabled": _fields("closes_at for kind opens_at payload rule title"),
    "governance:regulation:adopted": _fields("motion sha256 version"),
    "governance:scale:adopted": _fields("motion shares"),
    "governance:vote:cast": _fields("changed choice member"),
    "identity:clearance:granted": _fields(
        "expires_at holder level motion policy_set regulation supersedes", private="compartments"
    ),
    "identity:clearance:revoked": _fields("holder level"),
    "identity:institution:created": _fields("country kind name"),
    "identity:institution:updated": _fields("changes"),
    "identity:person:created": _fields(
        "bootstrap institution recovery roles", private="email name orcid"
    ),
    "identity:person:updated": _fields("changes", private="email name orcid"),
    "identity:role:granted": _fields("name role"),
    "identity:role:revoked": _fields("role"),
    "identity:token:issued": _fields("expires_at holder job level project recovery scopes"),
    "identity:token:revoked": _fields("holder job"),
    "record:commitment:opened": _fields("field"),
    "record:witness:registered": _fields("motion verifier_key"),
    "record:witness:retired": _fields("motion"),
    "simulator:whatif:attached": _fields("in_force jobs policy proposed sha256 whatif"),
    "workloads:evaluation:published": _fields(
        "dataset harness job log metrics model sample_root samples task"
    ),
    "workloads:workload:admitted": _fields(
        "config_sha256 dataset kind model", private="config inputs_private out"
    ),
}

PAST_SCHEMAS: Mapping[int, Mapping[str, PastFields]] = MappingProxyType(
    {1: MappingProxyType(_SCHEMA_1)}
)

# The envelope's own fields, and the version each first appeared in (the rest were in 1).
ENVELOPE_SINCE: Mapping[str, int] = MappingProxyType({"schema": 2})
