"""Finding processes by what they run: a pid seen inside a job's pid namespace means nothing
outside it, so tests name a job's processes by a command line no other process has."""

from __future__ import annotations

import uuid
from pathlib import Path

__all__ = ["running", "unique_sleep"]


def unique_sleep(seconds: int = 300) -> str:
    """`sleep 300.<nonce>`: GNU sleep takes the fraction, and no other process runs it."""
    return f"sleep {seconds}.{uuid.uuid4().int % 10**9}"


def running(command: str) -> list[int]:
    """Pids (as this process sees them) of live, not zombie, processes running `command`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
            continue
        if cmdline == command and state != "Z":
            found.append(int(proc.name))
    return found
