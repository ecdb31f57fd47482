"""A real facility on a real port for the CLI to talk to over HTTP (SQLite)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator

T = TypeVar("T")


@dataclass
class Served:
    url: str
    token: str
    facility: Facility
    settings: Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(facility: Facility, port: int) -> Iterator[str]:
    """`facility` served by uvicorn on `port` in a thread, until the block ends; its URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(facility),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            log_config=None,  # see tests/conftest.py: no logging.dictConfig mid-run
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health").status_code == 200:
                break
        except httpx.ConnectError:
            pass
        assert time.monotonic() < deadline, f"the facility on {url} did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def a_new_facility_served(
    home: Path, prepare: Callable[[Session], T] = lambda _db: None
) -> Iterator[tuple[Served, T]]:
    """A new facility with its first operator, served until the block ends, and what `prepare`
    returned. `prepare` (seeding the demo, say) runs before the facility is served, as
    `commonlab up` runs it: once served, the facility's own threads write too, and a test's
    writes would queue behind them for SQLite's lock."""
    port = free_port()
    settings = Settings(home=home, port=port, sequencer_interval_ms=5)
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    assert token
    with facility.db.session() as session:
        prepared = prepare(session)
    try:
        with serving(facility, port) as url:
            yield Served(url=url, token=token, facility=facility, settings=settings), prepared
    finally:
        facility.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with a_new_facility_served(tmp_path / "home") as (served, _):
        yield served


@pytest.fixture(autouse=True)
def cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every CLI test's saved login out of the real home directory."""
    path = tmp_path / "cli.toml"
    monkeypatch.setenv("COMMONLAB_CLI_CONFIG", str(path))
    monkeypatch.delenv("COMMONLAB_URL", raising=False)
    monkeypatch.delenv("COMMONLAB_TOKEN", raising=False)
    # Wide enough that Rich wraps neither the table cells nor the lines the tests read (a line
    # naming a pytest tmp folder runs past 200 characters).
    monkeypatch.setenv("COLUMNS", "500")
    return path
