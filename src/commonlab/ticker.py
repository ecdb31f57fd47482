"""A small background thread that runs one job every few seconds until stopped (closing
votes whose time is up). Errors are logged and the next tick tries again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Ticker"]

log = logging.getLogger("commonlab.ticker")


class Ticker:
    def __init__(self, name: str, interval_s: float, job: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval_s
        self._job = job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()  # started again: a process that leads once more (leader.py)
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._job()
            except Exception:
                log.exception("%s failed; will retry", self._name)
