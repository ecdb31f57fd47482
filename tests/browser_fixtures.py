"""Browser fixtures for every test package: a live facility served by uvicorn on a free local
port, and a Chromium page driven by Playwright (Debian's /usr/bin/chromium; Playwright's own
download is not used). Registered once, in tests/conftest.py: a second definition of the
session-scoped `chromium` would start a second Playwright in the same worker, which refuses to
run inside the first one's event loop.

Browser tests skip on a laptop without Chromium, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commonlab.app import create_app
from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Set to a folder to keep the browser tests' screenshots for a person to look at.
SCREENSHOT_DIR_ENV = "COMMONLAB_SCREENSHOTS"
# How long any page action waits before the test gives up. Never a speed check: on a shared CI
# machine running two test workers beside PyTorch, a page that takes 0.3 s here once took more
# than 10 s, and a shorter wait only turns a slow moment into a red build.
PAGE_PATIENCE_MS = 60_000


@dataclass(frozen=True)
class LiveServer:
    url: str
    app: Any
    facility: Facility
    operator_token: str


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The whole facility on SQLite under tmp_path, with its sequencer running, over real HTTP."""
    import uvicorn

    facility = open_facility(Settings(home=tmp_path / "live"))
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    assert token is not None
    app = create_app(facility, run_sequencer=True)
    # Binding the socket here (port 0) avoids racing another process for a "free" port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False, log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the live server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, facility, token)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        facility.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield PatientBrowser(browser)
        finally:
            browser.close()


class PatientBrowser:
    """The browser, whose every new context waits PAGE_PATIENCE_MS: no test picks its own."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **options: Any) -> Any:
        context = self._browser.new_context(**options)
        context.set_default_timeout(PAGE_PATIENCE_MS)
        return context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@pytest.fixture
def browser_page(chromium: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser tab on the live server, with JavaScript off: public pages need none."""
    context = chromium.new_context(
        base_url=live_server.url,
        viewport={"width": 1280, "height": 900},
        java_script_enabled=False,
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def screenshot(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a full-page screenshot in tmp_path (and in $COMMONLAB_SCREENSHOTS when set)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    keep = os.environ.get(SCREENSHOT_DIR_ENV)

    def take(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / f"{request.node.name}-{name}.png")
        return path

    return take
