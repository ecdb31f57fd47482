"""Shared fixtures: a facility on SQLite and on PostgreSQL, an API client, tokens.

Every test that takes `facility` (or anything built on it) runs twice: once on a fresh
SQLite file and once on PostgreSQL (COMMONLAB_TEST_DATABASE_URL, set by ./scripts/test).
Without PostgreSQL those cases skip on a laptop, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.db import Database
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.migrations import migrate
from commonlab.models import Base
from tests.browser_fixtures import browser_page, chromium, live_server, screenshot
from tests.helpers import OPEN_CLIENTS, auth
from tests.slurm_fixtures import _slurm_shared_lock, slurm_account, slurm_cluster

IN_CI = os.environ.get("CI", "").lower() == "true"

# Live servers in tests start uvicorn with log_config=None. Uvicorn's default logging setup
# runs logging.dictConfig, which closes every existing handler; absl's handler (imported with
# mlcroissant) then closes the stream it captured at import, which under pytest is pytest's
# own stderr capture file, and every later test in that worker fails to read its output.
PG_URL = os.environ.get("COMMONLAB_TEST_DATABASE_URL", "")

# Hypothesis times every example (200 ms by default) and fails one that runs over: a speed
# check in disguise, which a busy shared machine fails at random. Property tests check
# properties; speed belongs in bench/.
settings.register_profile("commonlab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("commonlab")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database") == "postgres":
            item.add_marker(pytest.mark.postgres)


# Databases -----------------------------------------------------------------------------------

# Every engine that has connected, so a test can tell which it left holding connections.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
event.listen(Engine, "engine_connect", lambda connection: _ENGINES.add(connection.engine))


def _held(engine: Engine) -> int:
    """Connections `engine`'s pool holds, idle or in use (a NullPool, the leader lease's,
    holds none between uses)."""
    pool = engine.pool
    if not hasattr(pool, "checkedin"):
        return 0
    return pool.checkedin() + pool.checkedout()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_database_connection_outlives_its_test() -> Iterator[None]:
    """An engine a test (or the code it runs) opened and never disposed keeps its idle
    connections until the garbage collector deletes them, in whatever later test it runs,
    where psycopg's ResourceWarning fails that innocent test. So each test disposes what it
    opened: this fails the test that did not, naming the database."""
    before = set(_ENGINES)
    yield
    left = [
        engine.url.render_as_string(hide_password=True)
        for engine in set(_ENGINES) - before
        if _held(engine)
    ]
    del before
    assert not left, f"this test left connections open (close the Facility or dispose): {left}"


@pytest.fixture(autouse=True)
def _own_state_directory(tmp_path_factory, monkeypatch) -> None:
    """`record watch` and `audit` remember the last checkpoint they verified per URL in the
    user's state directory; tests reuse ports for different facilities, so each test gets
    its own, or one facility's checkpoint would read as another's fork."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(autouse=True)
def _up_in_process_leaves_the_process_alone(monkeypatch) -> Iterator[None]:
    """`commonlab up` run inside a test (journey 9's refusal and forced start) would configure
    the whole process's logging through uvicorn (a dictConfig: see above, it breaks every
    later test of the worker) and set PROMETHEUS_MULTIPROC_DIR for its server processes.
    Neither may outlive the test: a logging configuration `up` hands uvicorn is not applied
    here, and the variable is put back."""
    applies = uvicorn.Config.configure_logging

    def configure_logging(config: uvicorn.Config) -> None:
        if not isinstance(config.log_config, dict):
            applies(config)

    monkeypatch.setattr(uvicorn.Config, "configure_logging", configure_logging)
    before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    yield
    if before is None:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = before


@pytest.fixture(autouse=True)
def _close_http_clients() -> Iterator[None]:
    """Close the clients a test made with tests.helpers.http_client."""
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time is slower)."""
    path = tmp_path_factory.mktemp("template") / "commonlab.db"
    database = Database(f"sqlite:///{path}")
    migrate(database.engine)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this xdist worker's own."""
    # The pid keeps two test runs sharing one server (two shells, two agents) apart.
    with empty_postgres_database(f"commonlab_test_{worker_id}_{os.getpid()}") as url:
        database = Database(url)
        migrate(database.engine)
        database.dispose()
        yield url


@contextmanager
def empty_postgres_database(name: str) -> Iterator[str]:
    """A new, empty database `name` on the tests' PostgreSQL (dropped after), or a skip
    where there is none (a failure under CI=true)."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but COMMONLAB_TEST_DATABASE_URL is not set: run ./scripts/test")
        pytest.skip("no PostgreSQL: set COMMONLAB_TEST_DATABASE_URL or run ./scripts/test")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()  # holds no connection while the database is in use
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(url: str) -> None:
    """Empty every table (keeping the schema) and put back the record's head row."""
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "INSERT INTO record_head (id, size, root_hash, updated_at) "
                "VALUES (1, 0, :root, now())"
            ),
            {
                "root": bytes.fromhex(
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                )
            },
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "commonlab.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    return url


# The facility and its API ----------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database)


@pytest.fixture
def facility(settings: Settings) -> Iterator[Facility]:
    fac = open_facility(settings)
    yield fac
    # Disposing an engine leaves alone a connection still checked out (a session never
    # closed, a streamed answer never read to its end): say so here rather than let it leak.
    held = fac.db.engine.pool.checkedout()  # type: ignore[attr-defined]
    fac.close()
    assert not held, f"{held} database connection(s) still checked out when the test ended"


@pytest.fixture
def app(facility: Facility) -> Any:
    # Tests sequence the record explicitly (sequence_now) so every assertion is deterministic.
    return create_app(facility, run_sequencer=False)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def operator_token(facility: Facility) -> str:
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    assert token is not None
    return token


@pytest.fixture
def operator(operator_token: str) -> dict[str, str]:
    """Headers that act as the facility's first operator."""
    return auth(operator_token)


__all__ = [  # shared fixtures, re-exported
    "_slurm_shared_lock",
    "browser_page",
    "chromium",
    "live_server",
    "screenshot",
    "slurm_account",
    "slurm_cluster",
]
