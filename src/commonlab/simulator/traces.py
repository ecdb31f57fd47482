"""Loaders for job traces: the public Alibaba GPU trace, a Slurm `sacct -P` export and
commonlab's own plain CSV. Each returns a `Trace`: columns of jobs plus what was set aside."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from commonlab.errors import InvalidInput

__all__ = [
    "ALIBABA_COLUMNS",
    "PLAIN_COLUMNS",
    "SACCT_COLUMNS",
    "Trace",
    "load_alibaba",
    "load_plain",
    "load_sacct",
    "load_trace",
]

ALIBABA_COLUMNS = (
    "name",
    "num_gpu",
    "gpu_milli",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
SACCT_COLUMNS = ("JobID", "Account", "Submit", "Start", "End")
PLAIN_COLUMNS = ("job_id", "tenant", "submit", "runtime", "accelerators")

# The reasons a job is set aside rather than simulated; the report counts each.
NEVER_RAN = "never ran in the recorded trace (no runtime)"
NO_ACCELERATORS = "asks for no accelerators (CPU-only)"
ZERO_RUNTIME = "ran for zero seconds"


@dataclass
class Trace:
    """Jobs of one trace file, as columns (one entry per job, in file order)."""

    name: str
    path: Path
    kind: str
    submit: list[float] = field(default_factory=list)
    runtime: list[float] = field(default_factory=list)
    accelerators: list[int] = field(default_factory=list)
    tenant: list[str] = field(default_factory=list)
    # Allowed accelerator classes, e.g. ("V100M16", "V100M32"); () means any class.
    classes: list[tuple[str, ...]] = field(default_factory=list)
    one_domain: list[bool] = field(default_factory=list)
    recorded_wait: list[float] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    set_aside: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    source_accelerators: int | None = None

    def __len__(self) -> int:
        return len(self.submit)

    def add(
        self,
        *,
        submit: float,
        runtime: float,
        accelerators: int,
        tenant: str,
        classes: tuple[str, ...] = (),
        one_domain: bool = False,
        recorded_wait: float = math.nan,
        line: int,
    ) -> None:
        self.submit.append(submit)
        self.runtime.append(runtime)
        self.accelerators.append(accelerators)
        self.tenant.append(tenant)
        self.classes.append(classes)
        self.one_domain.append(one_domain)
        self.recorded_wait.append(recorded_wait)
        self.line.append(line)


def load_trace(path: Path, kind: str = "auto") -> Trace:
    """Load a trace; `kind` is alibaba, sacct, csv or auto (decided by the header line)."""
    if kind == "auto":
        kind = _sniff(path)
    loaders = {"alibaba": load_alibaba, "sacct": load_sacct, "csv": load_plain}
    if kind not in loaders:
        raise InvalidInput(f"{path}: unknown trace kind {kind!r} (use alibaba, sacct or csv)")
    return loaders[kind](path)


def load_alibaba(path: Path) -> Trace:
    """openb_pod_list_*.csv. Runtime = deletion - scheduled; recorded wait = scheduled -
    creation. A GPU-sharing task (gpu_milli < 1000) is rounded up to one whole accelerator:
    the facility does not share accelerators between jobs. A pod never spans nodes, so every
    task asks for one interconnect domain."""
    trace = Trace(name=path.stem, path=path, kind="alibaba")
    fractional = 0
    for line, row in _rows(path, ALIBABA_COLUMNS, delimiter=","):
        count = _int(row, "num_gpu", path, line)
        milli = _int(row, "gpu_milli", path, line)
        if count < 0 or milli < 0:
            raise InvalidInput(f"{path} line {line}: num_gpu and gpu_milli must be >= 0")
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            continue
        if not row["scheduled_time"].strip():
            trace.set_aside[NEVER_RAN] += 1
            continue
        created = _int(row, "creation_time", path, line)
        scheduled = _int(row, "scheduled_time", path, line)
        deleted = _int(row, "deletion_time", path, line)
        runtime = deleted - scheduled
        if runtime < 0:
            raise InvalidInput(
                f"{path} line {line}: deletion_time {deleted} is before scheduled_time "
                f"{scheduled} (negative duration)"
            )
        if scheduled < created:
            raise InvalidInput(
                f"{path} line {line}: scheduled_time {scheduled} is before creation_time "
                f"{created} (negative wait)"
            )
        if runtime == 0:
            trace.set_aside[ZERO_RUNTIME] += 1
            continue
        fractional += count == 1 and milli < 1000
        spec = (row.get("gpu_spec") or "").strip()
        trace.add(
            submit=created,
            runtime=runtime,
            accelerators=count,
            tenant=(row.get("qos") or "default").strip() or "default",
            classes=tuple(c for c in spec.split("|") if c),
            one_domain=True,
            recorded_wait=scheduled - created,
            line=line,
        )
    if fractional:
        trace.notes.append(
            f"{fractional} GPU-sharing tasks (gpu_milli < 1000) rounded up to one accelerator"
        )
    nodes = path.with_name("openb_node_list_gpu_node.csv")
    if nodes.exists():
        with nodes.open(newline="") as handle:
            trace.source_accelerators = sum(int(r["gpu"]) for r in csv.DictReader(handle))
    return trace


_GPU_TRES = re.compile(r"gres/gpu(?::([A-Za-z0-9_.-]+))?=(\d+)")


def load_sacct(path: Path) -> Trace:
    """`sacct -P -o JobID,Account,Submit,Start,End,AllocTRES,Partition` (or ReqTRES). Job
    steps (`123.batch`, `123.0`) are skipped; the accelerator count and class come from
    `gres/gpu[:TYPE]=N` in AllocTRES (ReqTRES when AllocTRES is absent or empty). Partition
    may be present but is not read: the simulated fleet has its own partitions."""
    trace = Trace(name=path.stem, path=path, kind="sacct")
    header = _header(path, delimiter="|")
    tres_columns = [c for c in ("AllocTRES", "ReqTRES") if c in header]
    if not tres_columns:
        raise InvalidInput(f"{path}: missing column AllocTRES or ReqTRES (with gres/gpu=N)")
    for line, row in _rows(path, SACCT_COLUMNS, delimiter="|"):
        if "." in row["JobID"]:
            continue
        tres = next((row[c] for c in tres_columns if (row.get(c) or "").strip()), "")
        matches = _GPU_TRES.findall(tres)
        # gres/gpu=4 and gres/gpu:a100=4 may both be listed: they count the same GPUs.
        typed = [(kind, int(n)) for kind, n in matches if kind]
        count = sum(n for _, n in typed) if typed else sum(int(n) for _, n in matches)
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            continue
        if row["Start"].strip() in ("", "Unknown", "None"):
            trace.set_aside[NEVER_RAN] += 1
            continue
        submit = _time(row, "Submit", path, line)
        start = _time(row, "Start", path, line)
        end = _time(row, "End", path, line)
        if end < start:
            raise InvalidInput(
                f"{path} line {line}: End {row['End']} is before Start {row['Start']} "
                "(negative duration)"
            )
        if end == start:
            trace.set_aside[ZERO_RUNTIME] += 1
            continue
        trace.add(
            submit=submit,
            runtime=end - start,
            accelerators=count,
            tenant=row["Account"].strip() or "default",
            classes=tuple(sorted({kind for kind, _ in typed})),
            recorded_wait=max(0.0, start - submit),
            line=line,
        )
    return trace


def load_plain(path: Path) -> Trace:
    """commonlab's CSV: job_id, tenant, submit, runtime, accelerators (seconds, integers or
    decimals); optional class (`H100|A100`, empty for any), one_domain (0/1), wait (recorded
    queueing delay, seconds)."""
    trace = Trace(name=path.stem, path=path, kind="csv")
    for line, row in _rows(path, PLAIN_COLUMNS, delimiter=","):
        runtime = _float(row, "runtime", path, line)
        submit = _float(row, "submit", path, line)
        count = _int(row, "accelerators", path, line)
        if runtime < 0:
            raise InvalidInput(f"{path} line {line}: runtime {runtime:g} is negative")
        if submit < 0:
            raise InvalidInput(f"{path} line {line}: submit {submit:g} is negative")
        if count < 0:
            raise InvalidInput(f"{path} line {line}: accelerators {count} is negative")
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            continue
        if runtime == 0:
            trace.set_aside[ZERO_RUNTIME] += 1
            continue
        domain = (row.get("one_domain") or "0").strip()
        if domain not in ("0", "1", ""):
            raise InvalidInput(f"{path} line {line}: one_domain must be 0 or 1, not {domain!r}")
        wait = (row.get("wait") or "").strip()
        trace.add(
            submit=submit,
            runtime=runtime,
            accelerators=count,
            tenant=row["tenant"].strip() or "default",
            classes=tuple(c for c in (row.get("class") or "").strip().split("|") if c),
            one_domain=domain == "1",
            recorded_wait=_float(row, "wait", path, line) if wait else math.nan,
            line=line,
        )
    return trace


def _sniff(path: Path) -> str:
    try:
        with path.open() as handle:
            first = handle.readline()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the trace ({exc.strerror})") from None
    if "|" in first and "JobID" in first:
        return "sacct"
    if "num_gpu" in first:
        return "alibaba"
    return "csv"


def _header(path: Path, *, delimiter: str) -> list[str]:
    try:
        with path.open(newline="") as handle:
            return next(csv.reader(handle, delimiter=delimiter), [])
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the trace ({exc.strerror})") from None


def _rows(
    path: Path, required: tuple[str, ...], *, delimiter: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows with their line numbers (the header is line 1); fails on missing columns."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the trace ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}")
        for row in reader:
            if None in row or any(row[c] is None for c in required):
                raise InvalidInput(
                    f"{path} line {reader.line_num}: expected {len(reader.fieldnames or [])} fields"
                )
            yield reader.line_num, row


def _int(row: dict[str, str], column: str, path: Path, line: int) -> int:
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{path} line {line}: {column} must be an integer, not {row[column]!r}"
        ) from None


def _float(row: dict[str, str], column: str, path: Path, line: int) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput(f"{path} line {line}: {column} must be a number, not {row[column]!r}")
    return value


def _time(row: dict[str, str], column: str, path: Path, line: int) -> float:
    try:
        moment = datetime.fromisoformat(row[column].strip())
        # sacct prints local time without a zone; any fixed zone keeps the differences right.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        raise InvalidInput(
            f"{path} line {line}: {column} must be a time like 2024-05-01T12:00:00, "
            f"not {row[column]!r}"
        ) from None
