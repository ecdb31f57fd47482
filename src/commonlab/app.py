"""The FastAPI application: the domains' routers, one error handler tree, the body limit,
and the record sequencer running beside the web workers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, OperationalError

from commonlab import __version__
from commonlab.allocation.api import router as allocation_router
from commonlab.apidocs import OPENAPI_URL, install_openapi, mount_api_docs
from commonlab.artifacts.mount import mount_artifacts
from commonlab.compute import accounts
from commonlab.compute.admission import Admissions
from commonlab.compute.api import router as compute_router
from commonlab.compute.executors.registry import kind_of, make_executor
from commonlab.compute.job_controller import JobController
from commonlab.compute.service import ensure_local_fleet
from commonlab.datasearch.api import router as datasearch_router
from commonlab.facility import Facility
from commonlab.governance.api import router as governance_router
from commonlab.http import BodyLimit, install_authenticator, install_error_handlers
from commonlab.identity.api import bearer_principal
from commonlab.identity.api import router as identity_router
from commonlab.identity.oauth_api import router as oauth_router
from commonlab.operations.instruments import install_instruments
from commonlab.operations.leader import Duty, Leadership, lease_for
from commonlab.operations.limits import install_rate_limits
from commonlab.policy.principal import SYSTEM
from commonlab.portal.mount import mount_portal
from commonlab.record.api import log_router
from commonlab.record.api import router as record_router
from commonlab.record.sequencer import Sequencer
from commonlab.simulator.api import router as simulator_router
from commonlab.ticker import Ticker
from commonlab.workloads.api import router as workloads_router
from commonlab.workloads.evaluations_api import router as evaluations_router

__all__ = ["create_app", "prepare_fleet"]

API_DESCRIPTION = """\
The API of a commonlab facility. Every error is RFC 9457 `application/problem+json`.
Authenticate with `Authorization: Bearer <token>`; without it a request acts as the public.
Integers are signed 64-bit at most; ids are at most 2^53.
Lists take `limit` and `after` and return `{"items": [...], "next": cursor-or-null}`.
"""


def create_app(facility: Facility, *, run_sequencer: bool = True) -> FastAPI:
    """The app; `run_sequencer=False` (tests) leaves sequencing, vote closing and the job
    controller's ticks to the caller."""
    settings = facility.settings
    sequencer = Sequencer(facility.db, facility.signer, settings=settings)
    closer = Ticker("governance-closer", 5.0, lambda: _close_due_motions(facility))
    prepare_fleet(facility)
    jobs = JobController(
        facility.db,
        settings,
        make_executor(settings),
        tag=hashlib.sha256(facility.signer.verifier_key().encode()).hexdigest()[:8],
        token_key=facility.session_secret,
        on_change=sequencer.wake,
    )

    # Admission batches this process's own requests: every process runs it. Its rules hold
    # across processes because the database holds them (the balance rows it locks).
    admissions = Admissions(facility.db, settings.executor)
    # Of all the processes serving this facility, one at a time folds the record in and
    # signs, closes motions, drives the executor and steers Slurm (operations/leader.py).
    leader = Leadership(
        lease_for(facility),
        [
            Duty("record sequencer", sequencer.start, sequencer.stop, wake=sequencer.wake),
            Duty("motion closer", closer.start, closer.stop),
            *_account_duties(facility, jobs),
            Duty("job controller", jobs.start, jobs.stop, wake=jobs.wake),
        ],
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_sequencer:
            admissions.start()
            leader.follow_commits(facility.db)
            leader.start()
        try:
            yield
        finally:
            admissions.stop()
            leader.stop()
            sequencer.stop()  # also a follower's: it detaches its wake-on-commit hooks

    app = FastAPI(
        title="commonlab",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served from the package by mount_api_docs, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.facility = facility
    app.state.db = facility.db
    app.state.sequencer = sequencer
    app.state.jobs = jobs
    app.state.admissions = admissions
    app.state.leader = leader
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=facility.settings.max_body_bytes,
        # Artifact uploads arrive in resumable chunks, far larger than any JSON body.
        larger={"/api/v1/artifacts/uploads/": facility.settings.max_upload_chunk_bytes},
    )

    @app.get("/api/v1/health", tags=["meta"], summary="Liveness, version and record size")
    def health() -> dict[str, object]:
        answer: dict[str, object] = {"status": "ok", "version": __version__}
        answer["origin"] = facility.origin
        if facility.forks:  # forced on a restored log (record/witnessed.py): said everywhere
            answer["record_forks"] = facility.forks
        return answer

    install_authenticator(app, bearer_principal)
    install_rate_limits(app, settings)
    install_instruments(app, facility)
    app.include_router(identity_router)
    app.include_router(oauth_router)
    app.include_router(governance_router)
    app.include_router(allocation_router)
    app.include_router(compute_router)
    app.include_router(workloads_router)
    app.include_router(evaluations_router)
    app.include_router(datasearch_router)
    app.include_router(simulator_router)
    app.include_router(record_router)
    app.include_router(log_router)
    mount_portal(app)
    mount_artifacts(app)
    mount_api_docs(app)
    install_openapi(app)
    return app


def prepare_fleet(facility: Facility) -> None:
    """On the local executor, the machine is the fleet: made once, before any worker runs
    (`up --workers` makes it in the parent)."""
    if not kind_of(facility.settings.executor).local_fleet:
        return
    for attempt in range(2):
        try:
            with facility.db.session() as session:
                ensure_local_fleet(session, cpus=os.cpu_count() or 1, memory_gb=_memory_gb())
            return
        except (IntegrityError, OperationalError):
            # Another process starting at the same moment made it first (or held SQLite's
            # write lock): the second look finds it.
            if attempt:
                raise


def _account_duties(facility: Facility, jobs: JobController) -> list[Duty]:
    """With an executor that has accounts (Slurm): keep them in line with governance, and
    steer member-state shares."""
    settings = facility.settings
    runner = jobs.executor.accounts
    if runner is None:
        return []

    def sync() -> None:
        with facility.db.session() as db:
            accounts.sync_accounts(db, SYSTEM, runner, settings)

    def steer() -> None:
        with facility.db.session() as db:
            accounts.steer_shares(db, SYSTEM, runner, settings)

    plan = [("account-sync", settings.account_sync_minutes, sync)]
    plan.append(("share-controller", settings.share_steer_minutes, steer))
    tickers = [(name, Ticker(name, minutes * 60.0, job)) for name, minutes, job in plan if minutes]
    return [Duty(name, ticker.start, ticker.stop) for name, ticker in tickers]


def _memory_gb() -> int:
    """This machine's memory in whole GiB (the local partition's node size)."""
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        return 1
    return max(1, kib // (1 << 20))


def _close_due_motions(facility: Facility) -> None:
    from commonlab.governance.service import close_due_motions

    with facility.db.session() as session:
        close_due_motions(session)
