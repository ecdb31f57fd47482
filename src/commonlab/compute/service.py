"""Compute use cases: the fleet, job admission, cancellation and resubmission, and the
transitions the job controller applies from what the executor reports.

One transaction per use case; `authorize()` first; every change writes its record entry in
the same transaction. Admission holds the job's hours on the allocation ledger in that same
transaction, and the transition to a final state closes the hold in its own: a job is
charged exactly once, by construction of the ledger (a reservation closes once).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from commonlab import record
from commonlab.allocation import service as allocation
from commonlab.artifacts import service as artifacts
from commonlab.compute import rules
from commonlab.compute.access import authorize_job as _authorize_job
from commonlab.compute.access import readable_job
from commonlab.compute.events import ComputeEvent, job_event
from commonlab.compute.executors.base import Observed
from commonlab.compute.executors.registry import kind_of
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.compute.metrics import (
    Curve,
    Latest,
    MetricsPage,
    metric_curves,
    metrics_of,
    record_metrics,
)
from commonlab.compute.models import Job, JobTransition, Node, Partition, Site
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.compute.schemas import JobCreate
from commonlab.db import lock_for_writing, utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound
from commonlab.identity import service as identity
from commonlab.policy import Action, Resource, authorize, authorize_inside
from commonlab.policy.levels import Level
from commonlab.policy.principal import SYSTEM, Principal

__all__ = [
    "Curve",
    "Latest",
    "Launch",
    "LogChunk",
    "MetricsPage",
    "Submission",
    "admit",
    "admit_many",
    "apply_fleet",
    "apply_observed",
    "cancel_job",
    "cancels_to_deliver",
    "certify_partition",
    "check_certification",
    "claim_handover",
    "cpus_handed_over",
    "enqueue_admitted",
    "ensure_local_fleet",
    "fleet_overview",
    "get_job",
    "handed_over",
    "handed_over_ids",
    "input_levels",
    "jobs_at_executor",
    "jobs_of_project",
    "jobs_query",
    "log_chunk",
    "metric_curves",
    "metrics_of",
    "move_job",
    "newest_jobs",
    "nodes_out_of_service",
    "note_waiting",
    "partition_name",
    "partition_names",
    "partition_views",
    "prepare_launch",
    "read_log",
    "readable_job",
    "record_metrics",
    "resubmission",
    "set_node_state",
    "submit_job",
    "waiting_for_handover",
]

FLEET = Resource.fleet()


# The fleet --------------------------------------------------------------------------------------


def apply_fleet(db: Session, actor: Principal, spec: FleetSpec) -> dict[str, Any]:
    """Make the fleet match a fleet document: sites, partitions and their nodes are added or
    resized; nothing is removed that the document does not name. Certification is not taken
    from the document: only a council motion raises it, so a higher level there is reported
    as pending."""
    with db.begin():
        authorize(actor, Action.FleetManage, FLEET)
        sites = {s.name: s for s in db.scalars(select(Site))}
        for site_spec in spec.sites:
            site = sites.get(site_spec.name)
            if site is None:
                site = sites[site_spec.name] = Site(name=site_spec.name, country=site_spec.country)
                db.add(site)
            site.country = site_spec.country
        db.flush()
        pending: list[dict[str, Any]] = []
        nodes_added = nodes_removed = 0
        for p in spec.partitions:
            partition = db.scalar(select(Partition).where(Partition.name == p.name))
            if partition is None:
                partition = Partition(name=p.name, certified_level=1, executor_name=p.name)
                db.add(partition)
            partition.site_id = sites[p.site].id
            partition.accelerator = p.accelerator
            partition.accelerators_per_node = p.accelerators_per_node
            partition.cpus_per_node = p.cpus_per_node
            partition.memory_gb_per_node = p.memory_gb_per_node
            partition.nodes_per_domain = p.domain_size
            db.flush()
            if int(p.certified_level) > partition.certified_level:
                pending.append({"partition": p.name, "asked": int(p.certified_level)})
            added, removed = _resize_nodes(db, partition, p.nodes)
            nodes_added += added
            nodes_removed += removed
        document = json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
        summary = {
            "sites": len(spec.sites),
            "partitions": len(spec.partitions),
            "accelerators": spec.accelerators,
            "nodes_added": nodes_added,
            "nodes_removed": nodes_removed,
            "document_sha256": hashlib.sha256(document).hexdigest(),
            "partition_names": sorted(p.name for p in spec.partitions),
        }
        record.append(db, ComputeEvent.FleetApplied, actor=actor, subject="fleet", data=summary)
    return {**summary, "certification_pending": pending}


def _resize_nodes(db: Session, partition: Partition, wanted: int) -> tuple[int, int]:
    """Give a partition exactly `wanted` nodes named `<partition>-<n>`, updating their shape."""
    have = db.scalar(select(func.count()).where(Node.partition_id == partition.id)) or 0
    db.execute(
        Node.__table__.update()
        .where(Node.partition_id == partition.id)
        .values(
            accelerators=partition.accelerators_per_node,
            cpus=partition.cpus_per_node,
            memory_gb=partition.memory_gb_per_node,
        )
    )
    if have < wanted:
        db.execute(
            Node.__table__.insert(),
            [
                {
                    "name": f"{partition.name}-{n}",
                    "partition_id": partition.id,
                    "domain": n // partition.nodes_per_domain,
                    "accelerators": partition.accelerators_per_node,
                    "cpus": partition.cpus_per_node,
                    "memory_gb": partition.memory_gb_per_node,
                    "state": "up",
                }
                for n in range(have, wanted)
            ],
        )
        return wanted - have, 0
    if have > wanted:
        extra = select(Node.id).where(Node.partition_id == partition.id).order_by(Node.id.desc())
        ids = list(db.scalars(extra.limit(have - wanted)))
        db.execute(Node.__table__.delete().where(Node.id.in_(ids)))
        return 0, have - wanted
    return 0, 0


def ensure_local_fleet(db: Session, *, cpus: int, memory_gb: int) -> bool:
    """On the embedded default, the machine itself is the fleet: one site, one partition
    `local` of CPU "accelerators" (one per core), open work only. Done once."""
    with db.begin():
        if db.scalar(select(Partition.id).limit(1)) is not None:
            return False
        site = Site(name="local", country="ZZ")
        db.add(site)
        db.flush()
        partition = Partition(
            name="local",
            site_id=site.id,
            accelerator="cpu",
            accelerators_per_node=cpus,
            cpus_per_node=cpus,
            memory_gb_per_node=memory_gb,
            nodes_per_domain=1,
            certified_level=1,
            executor_name="local",
        )
        db.add(partition)
        db.flush()
        _resize_nodes(db, partition, 1)
        record.append(
            db,
            ComputeEvent.FleetApplied,
            actor=SYSTEM,
            subject="fleet",
            data={
                "sites": 1,
                "partitions": 1,
                "accelerators": cpus,
                "local": True,
                "partition_names": ["local"],
            },
        )
    return True


def fleet_overview(db: Session, actor: Principal) -> dict[str, Any]:
    """Capacity and current use per partition, in three grouped queries whatever the size."""
    with db.begin():
        authorize(actor, Action.FleetRead, FLEET)
        up = Node.state == "up"
        capacity = {
            row.partition_id: row
            for row in db.execute(
                select(
                    Node.partition_id,
                    func.count().label("nodes"),
                    func.sum(case((up, 1), else_=0)).label("nodes_up"),
                    func.sum(Node.accelerators).label("accelerators"),
                    func.sum(case((up, Node.accelerators), else_=0)).label("accelerators_up"),
                ).group_by(Node.partition_id)
            )
        }
        running = JobState.RUNNING.value
        waiting = [JobState.ADMITTED.value, JobState.QUEUED.value]
        use = {
            row.partition_id: row
            for row in db.execute(
                select(
                    Job.partition_id,
                    func.sum(
                        case((Job.state == running, Job.accelerators * Job.nodes), else_=0)
                    ).label("in_use"),
                    func.sum(case((Job.state == running, 1), else_=0)).label("running"),
                    func.sum(case((Job.state.in_(waiting), 1), else_=0)).label("waiting"),
                )
                .where(Job.state.in_([running, *waiting]))
                .group_by(Job.partition_id)
            )
        }
        sites = {s.id: s for s in db.scalars(select(Site).order_by(Site.name))}
        partitions = []
        for p in db.scalars(select(Partition).order_by(Partition.name)):
            cap, now = capacity.get(p.id), use.get(p.id)
            partitions.append(
                {
                    "name": p.name,
                    "site": sites[p.site_id].name,
                    "country": sites[p.site_id].country,
                    "accelerator": p.accelerator,
                    "certified_level": p.certified_level,
                    "nodes": cap.nodes if cap else 0,
                    "nodes_up": int(cap.nodes_up or 0) if cap else 0,
                    "accelerators": int(cap.accelerators or 0) if cap else 0,
                    "accelerators_up": int(cap.accelerators_up or 0) if cap else 0,
                    "accelerators_in_use": int(now.in_use or 0) if now else 0,
                    "jobs_running": int(now.running or 0) if now else 0,
                    "jobs_waiting": int(now.waiting or 0) if now else 0,
                    "accelerators_per_node": p.accelerators_per_node,
                    "cpus_per_node": p.cpus_per_node,
                    "memory_gb_per_node": p.memory_gb_per_node,
                }
            )
    return {
        "sites": [{"name": s.name, "country": s.country} for s in sites.values()],
        "partitions": partitions,
        "accelerators": sum(p["accelerators"] for p in partitions),
        "accelerators_in_use": sum(p["accelerators_in_use"] for p in partitions),
    }


def set_node_state(db: Session, actor: Principal, name: str, state: str) -> Node:
    """Take a node out of service (`drain`, `down`) or bring it back (`up`)."""
    with db.begin():
        authorize(actor, Action.FleetManage, FLEET)
        node = db.scalar(select(Node).where(Node.name == name))
        if node is None:
            raise NotFound(f"no node {name!r}")
        before, node.state = node.state, state
        record.append(
            db,
            ComputeEvent.NodeState,
            actor=actor,
            subject=f"node/{name}",
            data={"from": before, "to": state},
        )
    return node


def check_certification(db: Session, partition_name: str, level: int) -> Partition:
    """Whether a `certify_partition` motion could take effect (checked when tabled and again
    when it passes)."""
    partition = db.scalar(select(Partition).where(Partition.name == partition_name))
    if partition is None:
        raise InvalidInput(f"payload.partition: no partition {partition_name!r}")
    if partition.certified_level == level:
        raise Conflict(f"partition {partition_name} is already certified for CL-{level}")
    if level < partition.certified_level:
        busy = db.scalar(
            select(func.count()).where(
                Job.partition_id == partition.id,
                Job.level > level,
                Job.state.not_in([s.value for s in TERMINAL]),
            )
        )
        if busy:
            raise Conflict(
                f"partition {partition_name} has {busy} unfinished jobs above CL-{level}: "
                "lower its certification after they end"
            )
    return partition


def certify_partition(db: Session, motion: Principal, partition_name: str, level: int) -> None:
    """Apply a passed `certify_partition` motion: `motion` is its authority
    (`policy.principal.motion_authority`), in the transaction that records the vote."""
    partition = check_certification(db, partition_name, level)
    before = partition.certified_level
    authorize(motion, Action.PartitionCertify, Resource.partition(partition.name, Level(before)))
    partition.certified_level = level
    partition.certified_by_motion = motion.motion_id
    record.append(
        db,
        ComputeEvent.PartitionCertified,
        actor=motion,
        subject=f"partition/{partition_name}",
        data={"from": f"CL-{before}", "to": f"CL-{level}", "motion": motion.motion_id},
    )


# Admission --------------------------------------------------------------------------------------


def partition_views(db: Session) -> list[rules.PartitionView]:
    counted = db.execute(
        select(
            Node.partition_id,
            func.count().label("nodes"),
            func.sum(case((Node.state == "up", 1), else_=0)).label("nodes_up"),
        ).group_by(Node.partition_id)
    ).all()
    nodes = {row.partition_id: (row.nodes, int(row.nodes_up or 0)) for row in counted}
    return [
        rules.PartitionView(
            id=p.id,
            name=p.name,
            accelerator=p.accelerator,
            certified_level=p.certified_level,
            nodes=nodes.get(p.id, (0, 0))[0],
            nodes_up=nodes.get(p.id, (0, 0))[1],
            accelerators_per_node=p.accelerators_per_node,
            cpus_per_node=p.cpus_per_node,
            memory_gb_per_node=p.memory_gb_per_node,
        )
        for p in db.scalars(select(Partition))
    ]


def input_levels(db: Session, actor: Principal, refs: list[str]) -> dict[str, int]:
    """The containment level of each input version, read as the submitter (so an input they
    may not read refuses the job, and a CL-2 read is on the record like any other). In the
    caller's transaction: the job's admission, so a refused job leaves no read behind."""
    levels: dict[str, int] = {}
    for ref in refs:
        try:
            levels[ref] = artifacts.version_level(db, actor, ref)
        except ValueError:
            raise InvalidInput(
                f"inputs: {ref!r} is not a version reference like datasets/ns/name@3"
            ) from None
    return levels


def _check_inputs(input_levels: dict[str, int], level: int) -> None:
    """No write-down: a job's outputs are at least as contained as its inputs."""
    above = {ref: lvl for ref, lvl in input_levels.items() if lvl > level}
    if above:
        ref, lvl = max(above.items(), key=lambda item: item[1])
        raise InvalidInput(
            f"inputs: {ref} is CL-{lvl}; a job reading it must run at CL-{lvl} or above "
            f"(this one is CL-{level})"
        )


def submit_job(
    db: Session,
    actor: Principal,
    req: JobCreate,
    *,
    executor: str,
    resubmit_of: int | None = None,
) -> Job:
    """Admit one job in a transaction of its own (see `admit`)."""
    with db.begin():
        lock_for_writing(db)
        return admit(db, actor, req, executor=executor, resubmit_of=resubmit_of)


def admit(
    db: Session,
    actor: Principal,
    req: JobCreate,
    *,
    executor: str,
    resubmit_of: int | None = None,
    partitions: list[rules.PartitionView] | None = None,
) -> Job:
    """Admit a job or refuse it with the reason, changing nothing. Admission checks, in order:
    the submitter may read every input (read now, as they are); they belong to the project
    and are cleared for the job's level; its inputs are no more contained than it; a
    partition certified for its level has its class and shape; the allocation has the hours
    (held now, settled at the end).

    Runs in the caller's transaction; `partitions`, when given, is the fleet read once."""
    checked = _check_admission(
        db, actor, req, executor=executor, resubmit_of=resubmit_of, partitions=partitions
    )
    (admitted,) = _write_admissions(db, [checked], executor=executor)
    if not isinstance(admitted, Job):
        raise admitted
    return admitted


@dataclass(frozen=True)
class Submission:
    """One job asked of the admission batcher: by whom, what, and what it resubmits."""

    actor: Principal
    spec: JobCreate
    resubmit_of: int | None = None


def admit_many(
    db: Session,
    submissions: list[Submission],
    *,
    executor: str,
    partitions: list[rules.PartitionView],
) -> list[Job | Exception]:
    """Admit several jobs in the caller's transaction, each as `admit` would, in order: the
    admitted job or the refusal, in each one's place. A refused job changes nothing.

    The rules are checked one job at a time; the rows of those that pass are written
    together (the jobs, their ledger lines and transitions: one statement each, not one per
    job), which is what lets a group of admissions share its round trips to the database.
    A job that names inputs is admitted alone in a savepoint, as reading its inputs writes
    (a logged read) and a refusal must take that back too."""
    outcomes: list[Job | Exception | _Checked] = []
    allocations: dict[tuple[Any, ...], int] = {}
    for submission in submissions:
        try:
            if submission.spec.inputs:
                with record.savepoint(db):
                    outcomes.append(
                        admit(
                            db,
                            submission.actor,
                            submission.spec,
                            executor=executor,
                            resubmit_of=submission.resubmit_of,
                            partitions=partitions,
                        )
                    )
            else:
                outcomes.append(
                    _check_admission(
                        db,
                        submission.actor,
                        submission.spec,
                        executor=executor,
                        resubmit_of=submission.resubmit_of,
                        partitions=partitions,
                        allocations=allocations,
                    )
                )
        except Exception as exc:  # the submitter's request raises it
            outcomes.append(exc)
    checked = [outcome for outcome in outcomes if isinstance(outcome, _Checked)]
    written = iter(_write_admissions(db, checked, executor=executor))
    return [next(written) if isinstance(o, _Checked) else o for o in outcomes]


@dataclass(frozen=True)
class _Checked:
    """A job that passed every rule of admission but the budget's: what writing it takes."""

    actor: Principal
    req: JobCreate
    level: Level
    cpus: int
    partition: rules.PartitionView
    allocation_id: int
    hours: Decimal
    today: date
    resubmit_of: int | None


def _check_admission(
    db: Session,
    actor: Principal,
    req: JobCreate,
    *,
    executor: str,
    resubmit_of: int | None,
    partitions: list[rules.PartitionView] | None,
    allocations: dict[tuple[Any, ...], int] | None = None,
) -> _Checked:
    """Every rule of `admit` before the allocation's budget, in its order; raises the
    refusal. Writes nothing but what reading the inputs writes. `allocations` keeps which
    allocation pays, by what decides it, for the other jobs of a group (one transaction)."""
    level = Level(req.level)
    levels = input_levels(db, actor, list(req.inputs))
    if actor.person_id is None:
        raise AccessDenied("jobs are submitted by people: sign in with your own token")
    job_resource = Resource.job(req.project, level, owner=actor.person_id)
    authorize_inside(actor, Action.JobSubmit, job_resource)
    _check_inputs(levels, int(level))
    shape = rules.Shape(
        accelerator=req.accelerator,
        accelerators=req.accelerators,
        cpus=req.cpus or req.accelerators,
        memory_gb=req.memory_gb,
        nodes=req.nodes,
    )
    fleet = partitions or partition_views(db)
    try:
        rules.check_nodes(
            req.nodes, req.accelerator, fleet, executor_limit=kind_of(executor).max_nodes
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        view = rules.place(shape, int(level), fleet)
    except ValueError as exc:
        raise Conflict(str(exc)) from None
    authorize(
        actor,
        Action.JobPlace,
        Resource.partition(view.name, Level(view.certified_level)),
        {"job_level": int(level)},
    )
    today = utcnow().date()
    asked = (req.project, req.accelerator, req.allocation_id, today)
    if chosen := (allocations or {}).get(asked):
        allocation_id = chosen
    else:
        allocation_id = allocation.allocation_for_job(
            db,
            project=req.project,
            accelerator=req.accelerator,
            allocation_id=req.allocation_id,
            on=today,
        ).id
        if allocations is not None:
            allocations[asked] = allocation_id
    hours = rules.reserve_hours(req.accelerators, req.time_limit_minutes, nodes=req.nodes)
    return _Checked(actor, req, level, shape.cpus, view, allocation_id, hours, today, resubmit_of)


def _write_admissions(
    db: Session, checked: list[_Checked], *, executor: str
) -> list[Job | Exception]:
    """Hold each checked job's hours, in order, and write those the budget allows: the jobs,
    their holds, their first transitions and their entries. The job, or the ledger's
    refusal, in each one's place."""
    holds = [allocation.Hold(c.allocation_id, c.req.accelerator, c.hours, c.today) for c in checked]
    refusals = allocation.check_holds(db, SYSTEM, holds)
    passed = [(c, hold) for c, hold, no in zip(checked, holds, refusals, strict=True) if not no]
    jobs = [
        Job(
            name=c.req.name,
            project=c.req.project,
            allocation_id=c.allocation_id,
            submitter_id=c.actor.person_id,
            command=c.req.command,
            env=dict(c.req.env),
            inputs=list(c.req.inputs),
            accelerator=c.req.accelerator,
            accelerators=c.req.accelerators,
            cpus=c.cpus,
            memory_gb=c.req.memory_gb,
            nodes=c.req.nodes,
            time_limit_minutes=c.req.time_limit_minutes,
            level=int(c.level),
            partition_id=c.partition.id,
            executor=executor,
            state=JobState.ADMITTED.value,
            reason="",
            reserved_hours=c.hours,
            resubmit_of=c.resubmit_of,
        )
        for c, _ in passed
    ]
    db.add_all(jobs)
    db.flush()
    holds = [replace(hold, job=job.key) for (_, hold), job in zip(passed, jobs, strict=True)]
    charges = allocation.write_holds(db, SYSTEM, holds)
    for job, charge in zip(jobs, charges, strict=True):
        job.reservation_id = charge.id
        db.add(JobTransition(job_id=job.id, state=job.state, reason="admitted"))
    db.flush()  # one statement each, before the entries (an entry's insert would flush each)
    for (c, _), job in zip(passed, jobs, strict=True):
        public_inputs, private_inputs = _inputs_on_record(db, job.inputs)
        record.append(
            db,
            ComputeEvent.JobAdmitted,
            actor=c.actor,
            subject=job.key,
            data={
                "project": job.project,
                "allocation": c.allocation_id,
                "partition": c.partition.name,
                "class": job.accelerator,
                "accelerators": job.accelerators,
                "nodes": job.nodes,
                "level": c.level.label,
                "reserved_hours": str(c.hours),
                "inputs": public_inputs,
                **({"resubmit_of": f"job/{c.resubmit_of}"} if c.resubmit_of else {}),
            },
            private={
                "command": job.command,
                "env": job.env,
                **({"inputs_private": private_inputs} if private_inputs else {}),
            },
        )
    admitted = iter(jobs)
    return [next(admitted) if no is None else no for no in refusals]


def _inputs_on_record(db: Session, refs: list[str]) -> tuple[list[str], list[str]]:
    """A job's inputs as its admission entry gives them: public versions by name, the others
    only as a commitment (the record cannot be redacted)."""
    return artifacts.split_public_refs(db, refs)


def resubmission(db: Session, actor: Principal, job_id: int) -> JobCreate:
    """A finished job's spec, read in one transaction, to be admitted again by today's rules
    as a new job (`submit_job`): only by one who may read the job and every input it read,
    and a refusal does not name the inputs they may not read."""
    with db.begin():
        old = readable_job(db, actor, job_id)
        if JobState(old.state) not in TERMINAL:
            raise Conflict(f"job {old.id} is {old.state}: resubmit it once it has ended")
        if WITHHELD_INPUT in shown_inputs(db, actor, old):
            raise AccessDenied(
                f"job {old.id} read inputs you may not read: only someone who may read them "
                "all resubmits it"
            )
        return JobCreate(
            name=old.name,
            project=old.project,
            allocation_id=old.allocation_id,
            command=old.command,
            env=old.env,
            inputs=old.inputs,
            accelerator=old.accelerator,
            accelerators=old.accelerators,
            cpus=old.cpus,
            memory_gb=old.memory_gb,
            nodes=old.nodes,
            time_limit_minutes=old.time_limit_minutes,
            level=Level(old.level),
        )


# Reading jobs -----------------------------------------------------------------------------------


def job_finished(db: Session, job_id: int) -> bool:
    """Whether job `job_id` has ended (its state is on the public record anyway), in the
    caller's transaction; a job that does not exist has ended too."""
    job = db.get(Job, job_id)
    return job is None or job.state in rules.TERMINAL


def get_job(db: Session, actor: Principal, job_id: int) -> Job:
    with db.begin():
        job = readable_job(db, actor, job_id)
        _ = job_history(db, job)
    return job


WITHHELD_INPUT = "withheld"


def shown_inputs(db: Session, actor: Principal, job: Job) -> list[str]:
    """A job's inputs as `actor` may see them: each one they may not read is shown as
    `WITHHELD_INPUT`. Its name is the artifacts' to give (`artifacts.visible_refs`, the
    decision a read takes): a member of the project is not cleared for all it holds. In the
    caller's transaction."""
    visible = artifacts.visible_refs(db, actor, job.inputs)
    return [ref if ref in visible else WITHHELD_INPUT for ref in job.inputs]


def partition_names(db: Session) -> dict[int, str]:
    return dict(db.execute(select(Partition.id, Partition.name)).all())


def partition_name(db: Session, partition_id: int) -> str:
    return db.get_one(Partition, partition_id).name


def job_history(db: Session, job: Job) -> list[JobTransition]:
    return list(
        db.scalars(
            select(JobTransition).where(JobTransition.job_id == job.id).order_by(JobTransition.id)
        )
    )


def jobs_query(
    actor: Principal, *, project: str | None = None, state: JobState | None = None
) -> Any:
    """Jobs the actor may list: their projects' (or every project's for operators and
    auditors). Containment is enforced when a single job is read."""
    query = select(Job)
    if project is not None:
        authorize(actor, Action.JobRead, Resource.job(project))
        query = query.where(Job.project == project)
    elif not ({"operator", "auditor"} & {str(r) for r in actor.roles}):
        if actor.person_id is None:
            raise AccessDenied("sign in to list jobs: they belong to projects")
        query = query.where(Job.project.in_(sorted(actor.projects)))
    if state is not None:
        query = query.where(Job.state == state.value)
    return query


def nodes_out_of_service(db: Session, actor: Principal) -> list[tuple[Node, str]]:
    """Nodes not up (drained or down), each with its partition's name, by name."""
    authorize(actor, Action.FleetRead, FLEET)
    with db.begin():
        return [
            (node, partition)
            for node, partition in db.execute(
                select(Node, Partition.name)
                .join(Partition, Partition.id == Node.partition_id)
                .where(Node.state != "up")
                .order_by(Node.name)
            )
        ]


def jobs_of_project(db: Session, actor: Principal, project: str, *, limit: int = 50) -> list[Job]:
    """A project's newest jobs, for those who may list them (`jobs_query`'s rule)."""
    query = jobs_query(actor, project=project).order_by(Job.id.desc()).limit(limit)
    with db.begin():
        return list(db.scalars(query))


@dataclass(frozen=True)
class LogChunk:
    data: bytes
    offset: int  # where the next read should start
    size: int  # the file's size now
    finished: bool  # the job has ended: the file will not grow


def read_log(
    db: Session, actor: Principal, job_id: int, stream: str, offset: int, limit: int, root: Path
) -> LogChunk:
    """Bytes of a job's stdout or stderr from `offset`, readable while the job runs."""
    return log_chunk(get_job(db, actor, job_id), stream, offset, limit, root)


def log_chunk(job: Job, stream: str, offset: int | None, limit: int, root: Path) -> LogChunk:
    """From a job already read and authorized; `offset=None` reads the last `limit` bytes."""
    path = root / str(job.id) / f"{stream}.log"
    try:
        with open(path, "rb") as log:
            size = log.seek(0, 2)
            start = max(0, size - limit) if offset is None else offset
            if start > size:
                raise InvalidInput(f"offset {start} is past the end of {stream} ({size} bytes)")
            log.seek(start)
            data = log.read(limit)
    except FileNotFoundError:
        if offset:
            raise InvalidInput(f"offset {offset} is past the end of {stream} (0 bytes)") from None
        start, data, size = 0, b"", 0
    return LogChunk(data, start + len(data), size, JobState(job.state) in TERMINAL)


# Cancelling -------------------------------------------------------------------------------------


def inputs_of_own_job(db: Session, actor: Principal, job_id: int) -> list[str] | None:
    """What a job of `actor`'s declared as its inputs (checked at admission against its
    level), or None when there is no such job of theirs. In the caller's transaction: the
    registry asks when a version names the job that made it."""
    job = db.get(Job, job_id)
    if job is None or actor.person_id is None or job.submitter_id != actor.person_id:
        return None
    return list(job.inputs)


def cancel_job(db: Session, actor: Principal, job_id: int) -> Job:
    """Cancel a job. One the executor does not have yet ends now, its hours released; one it
    has is marked, and the job controller stops it and records the end it reports.

    Of concurrent cancels exactly one acts; the others get 409 and write nothing: the job's
    row moves only by compare-and-set (see `_move`), and its hold closes once (the ledger)."""
    with db.begin():
        lock_for_writing(db)  # on SQLite concurrent cancels queue and the later ones see the first
        job = db.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        _authorize_job(actor, Action.JobCancel, job)
        if JobState(job.state) in TERMINAL:
            raise Conflict(f"job {job_id} has already ended ({job.state}): nothing to cancel")
        if job.cancel_requested_at is not None:
            raise Conflict(
                f"job {job_id}: a cancel was already requested at "
                f"{record.format_time(job.cancel_requested_at)}; the job controller is stopping it"
            )
        if job.executor_id is None and job.handed_over_at is None:
            not_handed_over = (Job.executor_id.is_(None), Job.handed_over_at.is_(None))
            _finish(
                db,
                job,
                Observed(state=JobState.CANCELLED),
                reason=f"cancelled by {actor.pseudonym}",
                unless_moved=not_handed_over,
            )
        else:
            reason = f"cancel requested by {actor.pseudonym}"
            marked = db.execute(
                update(Job)
                .where(Job.id == job.id, Job.state == job.state, Job.cancel_requested_at.is_(None))
                .values(cancel_requested_at=utcnow(), reason=reason)
                .execution_options(synchronize_session=False)
            ).rowcount
            if marked != 1:
                raise _moved_meanwhile(job)
            db.refresh(job)
            record.append(
                db,
                ComputeEvent.JobCancelRequested,
                actor=actor,
                subject=job.key,
                data={"project": job.project, "state": job.state},
            )
    return job


# Transitions (the job controller, as the system) ------------------------------------------------


class _MovedMeanwhile(Conflict):
    """Another request or controller moved the job after this one read it."""


def _moved_meanwhile(job: Job) -> _MovedMeanwhile:
    return _MovedMeanwhile(
        f"job {job.id} was changed by another request at the same moment (it was {job.state}); "
        "this request changed nothing: read the job again"
    )


def _move(
    db: Session, job: Job, target: JobState, unless_moved: tuple[ColumnElement[bool], ...] = ()
) -> None:
    """Compare-and-set the job's row from the state this session read to `target`, with
    `unless_moved` as further conditions. The database decides, not the earlier read: of two
    requests that read the same state, the second finds no row to move (on PostgreSQL it
    waits for the first to commit) and raises before it has written anything."""
    moved = db.execute(
        update(Job)
        .where(Job.id == job.id, Job.state == job.state, *unless_moved)
        .values(state=target.value)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise _moved_meanwhile(job)
    set_committed_value(job, "state", target.value)


def move_job(db: Session, job: Job, observed: Observed) -> bool:
    """Apply what the executor reported, inside the caller's transaction: one transition
    (two when a short job both started and ended between polls), and at the end the one
    ledger line that closes the job's hold. False, with nothing written, when the job had
    already moved (a cancel or another controller got there first)."""
    current = JobState(job.state)
    target = observed.state
    if target == current or current in TERMINAL:
        return False
    if target not in TERMINAL and not rules.can_move(current, target):
        raise ValueError(f"job {job.id}: {current} cannot become {target}")
    try:
        if target not in TERMINAL:
            _enter(db, job, target, observed.reason, started_at=observed.started_at)
            return True
        if current == JobState.QUEUED and observed.started_at is not None:
            _enter(db, job, JobState.RUNNING, "", started_at=observed.started_at)
        _finish(db, job, observed, reason=observed.reason)
    except _MovedMeanwhile:
        return False  # raised by the first compare-and-set, before anything was written
    return True


def _enter(
    db: Session, job: Job, state: JobState, reason: str, *, started_at: datetime | None = None
) -> None:
    _move(db, job, state)
    job.reason = reason
    data: dict[str, Any] = {"project": job.project}
    if state == JobState.RUNNING:
        job.started_at = started_at or utcnow()
    if reason:
        data["reason"] = reason
    db.add(JobTransition(job_id=job.id, state=state.value, reason=reason))
    record.append(db, job_event(state), actor=SYSTEM, subject=job.key, data=data)


def _finish(
    db: Session,
    job: Job,
    observed: Observed,
    *,
    reason: str,
    unless_moved: tuple[ColumnElement[bool], ...] = (),
) -> None:
    """Enter a final state and close the hold: settle what the executor's accounting says
    the job used, or release the hold if it never ran. The state moves first (compare-and-
    set), so a request that lost the race stops before the ledger."""
    state = observed.state
    _move(db, job, state, unless_moved)
    used = rules.charge_hours(
        # The executor's own count covers every node; without one, each node's times nodes.
        observed.accelerators or job.accelerators * job.nodes,
        observed.elapsed_seconds,
        Decimal(job.reserved_hours),
    )
    ran = observed.elapsed_seconds > 0
    assert job.reservation_id is not None, "every admitted job holds hours"
    allocation.close_reservation(db, SYSTEM, job.reservation_id, used if ran else None, job=job.key)
    job.charged_hours = used if ran else Decimal(0)
    job.exit_code = observed.exit_code
    job.elapsed_seconds = observed.elapsed_seconds if ran else None
    job.ended_at = observed.ended_at or utcnow()
    job.reason = reason
    db.add(JobTransition(job_id=job.id, state=state.value, reason=reason))
    data: dict[str, Any] = {
        "project": job.project,
        "charged_hours": str(job.charged_hours),
        "elapsed_seconds": job.elapsed_seconds or 0,
    }
    if observed.exit_code is not None:
        data["exit_code"] = observed.exit_code
    if reason:
        data["reason"] = reason
    record.append(db, job_event(state), actor=SYSTEM, subject=job.key, data=data)
    identity.revoke_job_token(db, job.key)


# The job controller's bookkeeping (as the system) ------------------------------------------------
#
# The controller (job_controller.py) talks to the executor outside any transaction; every row it
# changes goes through one of these, each one transaction. A state change goes through
# `move_job` and writes its entry; the rest (a claim, the executor's id, why a job still waits)
# change no state and write none, as before.

_ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


def enqueue_admitted(db: Session) -> int:
    """Admitted jobs join the queue, each with its `compute:job:queued` entry; how many."""
    with db.begin():
        jobs = list(db.scalars(select(Job).where(Job.state == JobState.ADMITTED.value)))
        for job in jobs:
            move_job(db, job, Observed(state=JobState.QUEUED))
    return len(jobs)


def cancels_to_deliver(db: Session) -> list[Job]:
    """Jobs an executor has whose cancel was requested and which have not ended."""
    with db.begin():
        return list(
            db.scalars(
                select(Job).where(
                    Job.state.in_(_ACTIVE),
                    Job.cancel_requested_at.is_not(None),
                    Job.executor_id.is_not(None),
                )
            )
        )


def cpus_handed_over(db: Session, executor: str) -> int:
    """CPU slots the executor's unended jobs hold, counted from the moment they are claimed."""
    with db.begin():
        used = db.scalar(
            select(func.coalesce(func.sum(Job.cpus), 0)).where(
                Job.executor == executor,
                Job.state.in_(_ACTIVE),
                Job.handed_over_at.is_not(None),
            )
        )
    return int(used or 0)


def waiting_for_handover(db: Session, executor: str, *, limit: int | None = None) -> list[Job]:
    """Queued jobs of this executor that it does not have yet, oldest first (the first
    `limit` of them: the job controller asks for no more than it can start)."""
    with db.begin():
        return list(
            db.scalars(
                select(Job)
                .where(
                    Job.state == JobState.QUEUED.value,
                    Job.executor_id.is_(None),
                    Job.executor == executor,
                )
                .order_by(Job.id)
                .limit(limit)
            )
        )


def handed_over_ids(db: Session, executor: str) -> list[int]:
    """Ids of the executor's jobs claimed for handover and not yet ended."""
    with db.begin():
        return list(
            db.scalars(
                select(Job.id).where(
                    Job.executor == executor,
                    Job.state.in_(_ACTIVE),
                    Job.handed_over_at.is_not(None),
                )
            )
        )


def jobs_at_executor(db: Session, executor: str) -> list[Job]:
    """Unended jobs the executor has (an id there): what the controller asks it about."""
    with db.begin():
        return list(
            db.scalars(
                select(Job).where(
                    Job.state.in_(_ACTIVE),
                    Job.executor_id.is_not(None),
                    Job.executor == executor,
                )
            )
        )


def claim_handover(db: Session, job_id: int) -> bool:
    """Mark a job as being handed over, committed before the executor is asked, so a restart
    looks for it there instead of submitting it twice. False when it is no longer queued (a
    cancel since it was read) or another controller claimed it."""
    with db.begin():
        claimed = db.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.handed_over_at.is_(None),
                Job.state == JobState.QUEUED.value,
            )
            .values(handed_over_at=utcnow())
        ).rowcount
    return claimed == 1


@dataclass(frozen=True)
class Launch:
    """What a handover needs from the database: where it runs, and the token it acts with."""

    partition: str  # the partition's name in the executor
    token: str


def prepare_launch(db: Session, job: Job, *, token_key: bytes) -> Launch:
    """The job's partition in the executor and its token: it reaches the facility as its
    submitter (to read its inputs, push its outputs) until it ends; the expiry only bounds a
    token nothing revoked. A retried handover gets the same token again."""
    with db.begin():
        partition = db.get_one(Partition, job.partition_id)
        token = identity.job_token(
            db,
            job.submitter_id,
            job_key=job.key,
            project=job.project,
            level=job.level,
            expires_at=utcnow() + timedelta(minutes=job.time_limit_minutes, days=7),
            key=token_key,
        )
    return Launch(partition=partition.executor_name, token=token)


def handed_over(db: Session, job_id: int, executor_id: str) -> None:
    """The executor has the job, under `executor_id`: it no longer waits for anything."""
    with db.begin():
        db.execute(update(Job).where(Job.id == job_id).values(executor_id=executor_id, reason=""))


def note_waiting(db: Session, job_id: int, reason: str) -> None:
    """Why a queued job is not handed over yet (no run-as user free, the executor did not
    answer); shown on the job. Only while it is still queued and not handed over."""
    with db.begin():
        db.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.state == JobState.QUEUED.value,
                Job.executor_id.is_(None),
                Job.reason != reason,
            )
            .values(reason=reason)
        )


def apply_observed(
    db: Session, job_id: int, observed: Observed, *, expected_state: str | None = None
) -> bool:
    """Apply what the executor reported about a job (`move_job`), read afresh; with
    `expected_state`, only if the job is still in the state the controller read (another
    controller may have moved it meanwhile). Whether it moved."""
    with db.begin():
        job = db.get(Job, job_id, populate_existing=True)
        if job is None or (expected_state is not None and job.state != expected_state):
            return False
        return move_job(db, job, observed)


# Reads for the portal ---------------------------------------------------------------------------


def newest_jobs(
    db: Session, actor: Principal, *, project: str | None = None, limit: int = 50
) -> list[Job]:
    """The newest jobs `actor` may list (`jobs_query`'s rule), of one project when named."""
    query = jobs_query(actor, project=project).order_by(Job.id.desc()).limit(limit)
    with db.begin():
        return list(db.scalars(query))
