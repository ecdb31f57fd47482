"""Live metrics, as the job sees them: one JSON line per report in a local file, flushed at
once. The job's `commonlab workload run` tails the file and sends the lines to the facility
in batches, so training never waits on the network."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO

__all__ = ["MetricsWriter", "read_metrics"]


class MetricsWriter:
    """Appends `{"step": n, "time": t, name: value, ...}` lines; a no-op where `enabled` is
    false (every process but the first of a distributed run)."""

    def __init__(self, path: Path, *, enabled: bool = True) -> None:
        self.path = path
        self._file: IO[str] | None = None
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, step: int, **values: float) -> None:
        if self._file is None:
            return
        # A diverged loss is worth seeing, but JSON has no NaN: it travels as null.
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
        self._file.write(json.dumps({"step": int(step), "time": time.time(), **clean}) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_metrics(path: Path, offset: int = 0) -> tuple[list[dict[str, float]], int]:
    """The complete lines after byte `offset`, and the offset after the last of them (a
    line still being written is left for the next read)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    end = chunk.rfind(b"\n") + 1
    lines = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
    return lines, offset + end
