"""What `push` remembers of a directory between pushes: the BLAKE3 of each file it sent,
keyed by what `stat` says of the file, so a file unchanged since is not hashed again to find
that the repository holds it (git's index does the same for `git status`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

__all__ = ["DigestCache"]

# A file whose last change is this close to when its digest was recorded may have changed
# again within the same tick of a coarse clock without its stat changing ("racy clean" in
# git): its entry is not trusted.
RACY_NS = 2_000_000_000


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestCache:
    """Digests kept in `<folder>/digests.json`; a folder that cannot be written just
    keeps no cache (every file is hashed, as without one)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "digests.json"
        self._entries: dict[str, dict] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self._entries = loaded

    def get(self, rel: str, st: os.stat_result) -> str | None:
        """The file's BLAKE3 if it is unchanged since it was recorded, else None."""
        entry = self._entries.get(rel)
        if not isinstance(entry, dict) or entry.get("stat") != _key(st):
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= entry.get("recorded_ns", 0) - RACY_NS:
            return None
        digest = entry.get("blake3")
        return digest if isinstance(digest, str) else None

    def put(self, rel: str, st: os.stat_result, blake3: str) -> None:
        """Remember `blake3` for the file as `st` described it before it was read."""
        self._entries[rel] = {"stat": _key(st), "blake3": blake3, "recorded_ns": time.time_ns()}

    def save(self, keep: set[str]) -> None:
        """Write the entries of the files in `keep` (the others are gone from the folder)."""
        entries = {rel: e for rel, e in self._entries.items() if rel in keep}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(entries))
            os.replace(tmp, self.path)
