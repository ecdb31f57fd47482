"""Governance mirrored into the executor's accounts, and the share controller steering them.

`desired_accounts` turns what governance decided into Slurm's association tree: an account
per member state under root, and under it an account per project with an active allocation
(its fair share the allocation's size, its hard budget the allocation's hours). Projects led
from a country that is not a member state sit under their pool's account instead.

A member state's `Fairshare` belongs to the share controller once the account exists: sync
keeps what it last set, and `steer_shares` moves it in bounded steps so that delivered hours
follow entitled shares (the same `next_weights` the simulator evaluates). Where weights cannot
hold shares (long jobs, deep queues), the same step applies the simulator's `plan_reclaim`
to what Slurm holds now: a cap (`GrpTRES`) on each member state at or above its fair split
while another waits below its own, and `scontrol requeue` of the jobs of states above theirs
that lose the least work, within an hourly budget: the work since the job's last checkpoint,
as the job reported it (the `checkpoint_step` metric its training loop writes at each save),
or its whole run when it reported none (so among those, the newest go first). Sync leaves
the caps alone: they are the controller's too.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.allocation import service as allocation_service
from commonlab.compute.events import ComputeEvent
from commonlab.compute.executors.slurm import accounts as slurm_accounts
from commonlab.compute.executors.slurm.accounts import AccountSpec, Sacctmgr, SlurmTree
from commonlab.compute.executors.slurm.cli import SlurmJob, SlurmRefused
from commonlab.compute.executors.slurm.executor import CPU_CLASSES
from commonlab.compute.models import Job, JobMetric, Node, Partition
from commonlab.compute.rules import CHECKPOINT_METRIC, JobState
from commonlab.compute.share_controller import (
    RECLAIM,
    STEERING,
    ControllerSettings,
    ReclaimPlan,
    ReclaimSettings,
    Running,
    fair_split,
    next_weights,
    pins,
    plan_reclaim,
)
from commonlab.config import Settings
from commonlab.db import utcnow
from commonlab.errors import Conflict
from commonlab.governance.service import active_codes, current_shares
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal

__all__ = [
    "FAIRSHARE_SCALE",
    "RECLAIM",
    "STEERING",
    "SlurmControl",
    "desired_accounts",
    "member_account",
    "project_account",
    "steer_shares",
    "sync_accounts",
]

# Slurm's Fairshare is an integer: a member state's weight (a fraction of 1) times this.
FAIRSHARE_SCALE = 10_000
# A waiting job held back for one of these reasons could not start if it were given room
# (a spent budget, a hold, a dependency): it is not demand the controller makes room for.
_CANNOT_START = ("MinutesLimit", "JobHeld", "Dependency")
# The Nice that pins a job to the top of the queue: far above any priority multifactor gives
# (its weights sum to tens of thousands here; the job-size weight grows with the fleet), so
# a job's priority at or above it says it is pinned already.
PIN_NICE = 100_000_000


class SlurmControl(Sacctmgr, Protocol):
    """What the share controller drives (SlurmCli does): sacctmgr, the queue, requeue."""

    def queue(self) -> dict[int, SlurmJob]: ...

    def requeue(self, slurm_id: int) -> None: ...

    def pin(self, slurm_id: int, nice: int) -> None: ...


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def project_account(project: str, prefix: str = "") -> str:
    """The account a project's jobs are charged to."""
    return f"{prefix}p-{_slug(project)}"


def member_account(code: str, prefix: str = "") -> str:
    return f"{prefix}ms-{code.lower()}"


def pool_account(pool: str, prefix: str = "") -> str:
    return f"{prefix}pool-{_slug(pool)}"


def _tres(accelerator: str) -> str:
    return "cpu" if accelerator in CPU_CLASSES else "gres/gpu"


def desired_accounts(
    db: Session, settings: Settings, actual: SlurmTree, *, today: date | None = None
) -> dict[str, AccountSpec]:
    """The association tree governance wants now (read in the caller's transaction)."""
    today = today or utcnow().date()
    prefix = settings.slurm_account_prefix
    shares = current_shares(db)
    members = active_codes(db)
    desired: dict[str, AccountSpec] = {}
    for code in sorted(members):
        name = member_account(code, prefix)
        entitled = round(float(shares.get(code, Decimal(0))) / 100 * FAIRSHARE_SCALE)
        existing = actual.accounts.get(name)
        desired[name] = AccountSpec(
            name=name,
            parent="root",
            # The controller owns it once it exists (see the module's docstring).
            fairshare=existing.fairshare
            if existing and existing.fairshare > 0
            else max(1, entitled),
            budget_minutes=None,
        )
    budgets: dict[str, dict[str, int]] = {}
    parents: dict[str, str] = {}
    for allocation in allocation_service.active_allocations(db, today):
        name = project_account(allocation.project, prefix)
        if allocation.country in members:
            parents.setdefault(name, member_account(allocation.country, prefix))
        else:
            parents.setdefault(name, pool_account(allocation.pool, prefix))
        minutes = budgets.setdefault(name, {})
        for accelerator, hours in allocation.budget.items():
            tres = _tres(accelerator)
            minutes[tres] = minutes.get(tres, 0) + int(Decimal(hours) * 60)
    for pool in sorted({p for p in parents.values() if p.startswith(f"{prefix}pool-")}):
        desired[pool] = AccountSpec(name=pool, parent="root", fairshare=1, budget_minutes=None)
    for name, parent in parents.items():
        minutes = dict(budgets[name])
        project = name.removeprefix(f"{prefix}p-")
        desired[name] = AccountSpec(
            name=name,
            parent=parent,
            fairshare=max(1, sum(minutes.values()) // 60),
            budget_minutes=minutes,
            users=frozenset(settings.slurm_users(project)),  # each job's run-as user
        )
    return desired


def _ours(tree: SlurmTree, prefix: str) -> SlurmTree:
    """Only the accounts under this facility's prefix (tests and sites may share a Slurm)."""
    if not prefix:
        return tree
    return SlurmTree(
        accounts={n: a for n, a in tree.accounts.items() if n.startswith(prefix)},
        qos={n: q for n, q in tree.qos.items() if n.startswith(prefix)},
        default_accounts=tree.default_accounts,
    )


def sync_accounts(
    db: Session,
    actor: Principal,
    runner: Sacctmgr | None,
    settings: Settings,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Bring Slurm's accounts in line with governance; report drift rather than overwrite it.
    Idempotent: a second sync with nothing changed plans nothing."""
    with db.begin():
        authorize(actor, Action.FleetManage, Resource.fleet())
        if runner is None:
            raise Conflict(
                f"this facility runs the {settings.executor} executor: it has no accounts to sync"
            )
        actual = _ours(slurm_accounts.read_tree(runner), settings.slurm_account_prefix)
        desired = desired_accounts(db, settings, actual)
    plan = slurm_accounts.plan(desired, actual, force=force)
    if not dry_run and plan.changes:
        slurm_accounts.apply(plan, runner)
    result = {
        "changes": [c.description for c in plan.changes],
        "drift": [d.description for d in plan.drift],
        "applied": not dry_run,
    }
    if not dry_run:
        with db.begin():
            record.append(
                db,
                ComputeEvent.AccountsSynced,
                actor=actor,
                subject="fleet/accounts",
                data={
                    "changes": len(plan.changes),
                    "drift": len(plan.drift),
                    "force": force,
                    "accounts": sorted(desired),
                },
            )
    return result


def steer_shares(
    db: Session,
    actor: Principal,
    runner: SlurmControl | None,
    settings: Settings,
    *,
    window_days: int = 7,
    controller: ControllerSettings = STEERING,
    reclaim: ReclaimSettings = RECLAIM,
) -> dict[str, Any]:
    """One step of the share controller: compare each member state's delivered hours over the
    window with its fair share of them, move its account's Fairshare by a bounded step, and
    record every change. States without work waiting keep drifting back to their entitlement.
    Then hold shares now (`_reclaim`): cap states at their fair split of what runs while
    another waits below its own, lift the caps when nobody does, requeue within the budget.

    The fair share is the simulator's (`fair_split`, validated at 100,000 accelerators):
    the hours delivered in the window split by entitlement, each state's part capped at
    what it asked for — what it was delivered plus the hours its waiting jobs hold now — so
    a state waiting on a small job is not owed a large share it never asked for."""
    prefix = settings.slurm_account_prefix
    end = utcnow().date() + timedelta(days=1)
    with db.begin():
        authorize(actor, Action.FleetManage, Resource.fleet())
        if runner is None:
            raise Conflict(
                f"this facility runs the {settings.executor} executor: there are no shares to steer"
            )
        shares = {code: float(s) / 100 for code, s in current_shares(db).items()}
        delivered = _delivered(db, start=end - timedelta(days=window_days), end=end)
        asking = _waiting_hours(db)
        waiting = {code: True for code, hours in asking.items() if hours > 0}
        fair = fair_split(
            sum(delivered.values()),
            entitled=shares,
            demand={code: delivered.get(code, 0.0) + asking.get(code, 0.0) for code in shares},
        )
        actual = _ours(slurm_accounts.read_tree(runner), prefix)
        capacity = _capacity(db)
        now = utcnow()
        preempted = _preempted_since(db, now - timedelta(hours=1))
    weights = {}
    for code in shares:
        account = actual.accounts.get(member_account(code, prefix))
        if account is None:
            raise Conflict(f"no Slurm account for member state {code}: sync the accounts first")
        weights[code] = account.fairshare / FAIRSHARE_SCALE
    new = next_weights(
        entitled=shares,
        delivered=delivered,
        weights=weights,
        waiting=waiting,
        fair=fair,
        settings=controller,
    )
    moves = {
        code: (round(weights[code] * FAIRSHARE_SCALE), max(1, round(w * FAIRSHARE_SCALE)))
        for code, w in new.items()
    }
    moves = {code: (old, to) for code, (old, to) in moves.items() if old != to}
    # One kind of accelerator: the window's hours owed (+) or received beyond the fair split
    # (-) are that kind's, and the reclaim plan repays them. A fleet of GPUs and CPUs mixes
    # both kinds in those hours, so there it plans on what runs now alone.
    credit = (
        {code: (fair.get(code, 0.0) - delivered.get(code, 0.0)) * 3600 for code in shares}
        if len(capacity) == 1
        else {}
    )
    # A cpu= cap would count the CPUs of a state's GPU jobs too and could hold them back: on a
    # fleet with GPUs, only GPUs are capped and reclaimed (CPU partitions keep Fairshare).
    reclaimed = {"gres/gpu": capacity["gres/gpu"]} if "gres/gpu" in capacity else capacity
    queue = runner.queue()
    with db.begin():
        checkpoints = _checkpoints(db, settings.executor, queue)
    plans, held, runs = _plan_reclaim(
        actual,
        queue,
        prefix=prefix,
        entitled=shares,
        capacity=reclaimed,
        credit=credit,
        preempted=preempted,
        settings=reclaim,
        now=now,
        checkpoints=checkpoints,
    )
    caps = {
        code: {tres: cap for tres, p in plans.items() if (cap := p.caps.get(code)) is not None}
        for code in shares
    }
    desired = {}
    for code in shares:
        name = member_account(code, prefix)
        fairshare = moves[code][1] if code in moves else actual.accounts[name].fairshare
        desired[name] = AccountSpec(
            name=name,
            parent="root",
            fairshare=fairshare,
            budget_minutes=None,
            grp_tres=caps[code],
        )
    # Only the member-state accounts move: plan them alone, without reporting the rest as drift.
    plan = slurm_accounts.plan(
        desired,
        SlurmTree(
            accounts={n: a for n, a in actual.accounts.items() if n in desired},
            qos={},
            default_accounts=actual.default_accounts,
        ),
    )
    # Caps first: the room a requeue frees must not go back to the state it was taken from.
    slurm_accounts.apply(plan, runner)
    capped = {
        code: {"from": had, "to": caps[code]}
        for code in shares
        if (had := actual.accounts[member_account(code, prefix)].grp_tres) != caps[code]
        and not any(d.account == member_account(code, prefix) for d in plan.drift)
    }
    requeued = _requeue(db, runner, plans, runs, settings.executor)
    chosen = _to_pin(actual, queue, prefix, shares, plans, held, reclaimed, reclaim)
    pinned = _pin(db, runner, chosen, settings.executor)
    if moves:
        with db.begin():
            record.append(
                db,
                ComputeEvent.FairshareAdjusted,
                actor=actor,
                subject="fleet/shares",
                data={
                    "window_days": window_days,
                    "fairshare": {code: {"from": a, "to": b} for code, (a, b) in moves.items()},
                    "delivered_hours": {c: round(h, 2) for c, h in sorted(delivered.items())},
                    "fair_hours": {c: round(h, 2) for c, h in sorted(fair.items()) if h},
                },
            )
    targets = {
        tres: {code: round(t, 2) for code, t in sorted(p.targets.items()) if t}
        for tres, p in plans.items()
    }
    if capped or requeued or pinned:
        with db.begin():
            record.append(
                db,
                ComputeEvent.SharesReclaimed,
                actor=actor,
                subject="fleet/shares",
                data={
                    "caps": capped,
                    "requeued": requeued,
                    "pinned": pinned,
                    "targets": targets,
                    "held": held,
                },
            )
    return {
        "entitled": shares,
        "delivered_hours": delivered,
        "waiting": waiting,
        "fair_hours": fair,
        "fairshare": {code: {"from": a, "to": b} for code, (a, b) in moves.items()},
        "caps": capped,
        "requeued": requeued,
        "pinned": pinned,
        "targets": targets,
        "held": held,
        "drift": [d.description for d in plan.drift],
    }


def _plan_reclaim(
    tree: SlurmTree,
    queue: Mapping[int, SlurmJob],
    *,
    prefix: str,
    entitled: Mapping[str, float],
    capacity: Mapping[str, int],
    credit: Mapping[str, float],
    preempted: Mapping[str, float],
    settings: ReclaimSettings,
    now: datetime,
    checkpoints: Mapping[int, datetime] | None = None,
) -> tuple[dict[str, ReclaimPlan], dict[str, dict[str, int]], dict[Hashable, Running]]:
    """The reclaim plan per TRES (`gres/gpu`, `cpu`) for what Slurm holds now, and what each
    member state holds of each (pure). A job belongs to the member state whose account is
    its account or that account's parent; jobs of other accounts (the open pools, another
    facility's) only take capacity away. A job counts as a GPU job if it asks for GPUs.
    `checkpoints`: when each running job (by Slurm id) last reported a checkpoint; what a
    requeue loses is the work since, or the whole run without one.
    Also what each state holds, and the running jobs by Slurm id."""
    checkpoints = checkpoints or {}
    owner = _owners(tree, prefix, entitled)
    free = dict(capacity)
    in_use = {tres: dict.fromkeys(entitled, 0.0) for tres in capacity}
    running: dict[str, list[Running]] = {tres: [] for tres in capacity}
    waiting: dict[str, dict[str, list[int]]] = {tres: {} for tres in capacity}
    for job in sorted(queue.values(), key=_queue_order):
        tres = _tres_of(job)
        if tres not in capacity:
            continue
        code = owner.get(job.account)
        size = job.alloc_tres.get(tres, 0)
        if code is None:
            free[tres] -= size
        elif size:
            in_use[tres][code] += size
            if job.state == "RUNNING" and job.start is not None:
                started = job.start.timestamp()
                lost = _work_lost(job.start, checkpoints.get(job.slurm_id), now)
                running[tres].append(Running(job.slurm_id, code, size, started, lost))
        elif job.state == "PENDING" and not any(r in job.reason for r in _CANNOT_START):
            asks = job.requested_tres.get(tres, 0)
            if asks:
                waiting[tres].setdefault(code, []).append(asks)
    plans = {}
    for tres in capacity:
        if free[tres] <= 0:
            continue  # others' jobs hold it all: nothing to share
        plan = plan_reclaim(
            capacity=free[tres],
            entitled=entitled,
            running=running[tres],
            waiting=waiting[tres],
            credit=credit,
            preempted_last_hour=preempted.get(tres, 0.0),
            in_use=in_use[tres],
            settings=settings,
        )
        # A state with no work at all is not capped at nothing: between two steps (an hour
        # by default) that cap would hold its first job, which the next step makes room for.
        idle = {c for c in entitled if not in_use[tres][c] and not waiting[tres].get(c)}
        caps = {code: None if code in idle else cap for code, cap in plan.caps.items()}
        plans[tres] = replace(plan, caps=caps)
    held = {
        tres: {code: round(n) for code, n in sorted(in_use[tres].items()) if n} for tres in capacity
    }
    runs = {r.job: r for tres in capacity for r in running[tres]}
    return plans, held, runs


def _owners(tree: SlurmTree, prefix: str, entitled: Mapping[str, float]) -> dict[str, str | None]:
    """The member state each account's jobs belong to: the state whose account it is or is
    under (None for the open pools' and others')."""
    states = {member_account(code, prefix): code for code in entitled}
    return {
        name: states.get(name) or states.get(account.parent)
        for name, account in tree.accounts.items()
    }


def _tres_of(job: SlurmJob) -> str:
    """What a job is counted in: GPUs if it asks for any, else CPUs."""
    return "gres/gpu" if job.requested_tres.get("gres/gpu") else "cpu"


def _to_pin(
    tree: SlurmTree,
    queue: Mapping[int, SlurmJob],
    prefix: str,
    entitled: Mapping[str, float],
    plans: Mapping[str, ReclaimPlan],
    held: Mapping[str, Mapping[str, int]],
    capacity: Mapping[str, int],
    settings: ReclaimSettings,
) -> list[tuple[int, str, str]]:
    """The jobs to pin (pure): each member state's job Slurm shows pending for Resources (the
    one its scheduler holds room for) whose state holds no more than its target, within
    the hourly preemption budget, and not pinned already; as (Slurm id, state, TRES). The
    simulator pins the same job (`share_controller.pins`)."""
    owner = _owners(tree, prefix, entitled)
    chosen = []
    for job in sorted(queue.values(), key=_queue_order):
        code, tres = owner.get(job.account), _tres_of(job)
        if job.state != "PENDING" or job.reason != "Resources" or code is None:
            continue
        plan = plans.get(tres)
        if plan is None or job.priority >= PIN_NICE:
            continue
        target, size = plan.targets.get(code, 0.0), job.requested_tres.get(tres, 0)
        if pins(held.get(tres, {}).get(code, 0), target, size, capacity[tres], settings):
            chosen.append((job.slurm_id, code, tres))
    return chosen


def _commonlab_ids(db: Session, executor: str, slurm_ids: list[Hashable]) -> dict[str, int]:
    """commonlab's job id of each Slurm job that is the facility's, by Slurm id (a string)."""
    with db.begin():
        return dict(
            db.execute(
                select(Job.executor_id, Job.id).where(
                    Job.executor == executor,
                    Job.executor_id.in_([str(slurm_id) for slurm_id in slurm_ids]),
                )
            ).all()
        )


def _pin(
    db: Session, runner: SlurmControl, chosen: list[tuple[int, str, str]], executor: str
) -> list[dict[str, Any]]:
    """Pin the chosen jobs; what was pinned, with commonlab's job id where the job is
    commonlab's. A job that started or ended meanwhile is skipped (Slurm refuses it)."""
    if not chosen:
        return []
    jobs = _commonlab_ids(db, executor, [slurm_id for slurm_id, _, _ in chosen])
    pinned = []
    for slurm_id, code, tres in chosen:
        try:
            runner.pin(slurm_id, PIN_NICE)
        except SlurmRefused:
            continue
        pinned.append(
            {"job": jobs.get(str(slurm_id)), "slurm_job": slurm_id, "state": code, "tres": tres}
        )
    return pinned


def _work_lost(started: datetime, checkpoint: datetime | None, now: datetime) -> float:
    """Seconds of a running job's work a requeue would lose: since its last checkpoint,
    never more than its run so far (a checkpoint of an earlier run, before a requeue, saved
    none of this one's work) nor less than nothing (a time the job gave from ahead)."""
    run = max(0.0, (now - started).total_seconds())
    if checkpoint is None:
        return run
    return min(run, max(0.0, (now - checkpoint).total_seconds()))


def _checkpoints(db: Session, executor: str, queue: Mapping[int, SlurmJob]) -> dict[int, datetime]:
    """When each running job of the queue that is the facility's last reported a checkpoint
    (the latest `checkpoint_step` metric it posted), by Slurm id. The time is the one the job
    gave: a job can only make itself look cheaper to requeue by lying, as `_work_lost` keeps
    it within its own run."""
    running = [str(job.slurm_id) for job in queue.values() if job.state == "RUNNING"]
    if not running:
        return {}
    rows = db.execute(
        select(Job.executor_id, func.max(JobMetric.at))
        .join(JobMetric, JobMetric.job_id == Job.id)
        .where(
            Job.executor == executor,
            Job.executor_id.in_(running),
            JobMetric.name == CHECKPOINT_METRIC,
        )
        .group_by(Job.executor_id)
    )
    return {int(slurm_id): at for slurm_id, at in rows}


def _queue_order(job: SlurmJob) -> tuple[float, int]:
    """Waiting jobs in the order they were (re)queued."""
    since = job.submitted or job.start
    return (since.timestamp() if since else 0.0, job.slurm_id)


def _requeue(
    db: Session,
    runner: SlurmControl,
    plans: Mapping[str, ReclaimPlan],
    runs: Mapping[Hashable, Running],
    executor: str,
) -> list[dict[str, Any]]:
    """Requeue the planned victims; what was requeued, with commonlab's job id where the job
    is commonlab's. A job that ended meanwhile is skipped (Slurm refuses to requeue it)."""
    victims = [(tres, slurm_id) for tres, p in plans.items() for slurm_id in p.preempt]
    if not victims:
        return []
    jobs = _commonlab_ids(db, executor, [slurm_id for _, slurm_id in victims])
    requeued = []
    for tres, slurm_id in victims:
        try:
            runner.requeue(int(slurm_id))
        except SlurmRefused:
            continue  # it ended between reading the queue and now
        run = runs[slurm_id]
        requeued.append(
            {
                "job": jobs.get(str(slurm_id)),
                "slurm_job": slurm_id,
                "state": run.pool,
                "tres": tres,
                "accelerators": run.accelerators,
            }
        )
    return requeued


def _capacity(db: Session) -> dict[str, int]:
    """The fleet's accelerators on nodes that are up, per TRES (`gres/gpu`, `cpu`)."""
    rows = db.execute(
        select(Partition.accelerator, func.sum(Node.accelerators))
        .join(Node, Node.partition_id == Partition.id)
        .where(Node.state == "up")
        .group_by(Partition.accelerator)
    ).all()
    capacity: dict[str, int] = {}
    for accelerator, count in rows:
        capacity[_tres(accelerator)] = capacity.get(_tres(accelerator), 0) + int(count or 0)
    return {tres: count for tres, count in capacity.items() if count > 0}


def _preempted_since(db: Session, since: datetime) -> dict[str, float]:
    """Accelerators the controller requeued since `since`, per TRES (its hourly budget)."""
    preempted: dict[str, float] = {}
    for data in record.data_since(db, ComputeEvent.SharesReclaimed, since):
        for job in data.get("requeued", []):
            preempted[job["tres"]] = preempted.get(job["tres"], 0.0) + job["accelerators"]
    return preempted


def _delivered(db: Session, *, start: date, end: date) -> dict[str, float]:
    hours = allocation_service.delivered_hours(db, start=start, end=end)
    return {country: float(h) for country, h in hours.items()}


def _waiting_hours(db: Session) -> dict[str, float]:
    """Hours held by each member state's jobs admitted or queued now (their time limits:
    an upper bound of what they ask for)."""
    held = db.execute(
        select(Job.allocation_id, func.sum(Job.reserved_hours))
        .where(Job.state.in_([JobState.ADMITTED.value, JobState.QUEUED.value]))
        .group_by(Job.allocation_id)
    ).all()
    countries = allocation_service.countries_of(db, [allocation for allocation, _ in held])
    hours: dict[str, float] = {}
    for allocation, total in held:
        country = countries.get(allocation)
        if country:
            hours[country] = hours.get(country, 0.0) + float(total)
    return hours
