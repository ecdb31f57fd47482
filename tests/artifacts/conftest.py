"""A live facility on a real port (SQLite) for the CLI and the Hub clients to talk to. The
browser fixtures come from tests/conftest.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator

__all__ = ["Live", "live"]


@dataclass(frozen=True)
class Live:
    url: str
    app: Any
    facility: Facility
    token: str


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    import uvicorn

    # Small chunks, so every push here takes several resumable PUTs.
    settings = Settings(
        home=tmp_path / "live", max_upload_chunk_bytes=64 * 1024, sequencer_interval_ms=5
    )
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    assert token is not None
    app = create_app(facility, run_sequencer=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the live server did not start")
        time.sleep(0.02)
    monkeypatch.setenv("COMMONLAB_CLI_CONFIG", str(tmp_path / "cli.toml"))
    monkeypatch.setenv("COMMONLAB_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("COMMONLAB_TOKEN", token)
    try:
        yield Live(f"http://127.0.0.1:{port}", app, facility, token)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        facility.close()
