"""Loaders for job traces: the public Alibaba GPU trace, the GPU-cluster logs with submit,
start and end times (Helios, Acme, Philly as CSV), a Slurm `sacct -P` export and commonlab's
own plain CSV. Each streams its file and returns a `Trace`: columns of jobs plus what was set
aside. A bad file is refused with one line naming the file, the line and the field."""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from commonlab.errors import InvalidInput
from commonlab.simulator.inputs import read_node_list
from commonlab.simulator.textfile import MAX_LINE_BYTES, UTF8_BOM, Progress, Table, shown

__all__ = [
    "ALIBABA_COLUMNS",
    "CLUSTER_LOG_COLUMNS",
    "MAX_ACCELERATORS",
    "MAX_SECONDS",
    "MAX_SUBMIT",
    "PLAIN_COLUMNS",
    "SACCT_COLUMNS",
    "Progress",
    "Trace",
    "load_alibaba",
    "load_cluster_log",
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
# Helios (SenseTime, SC'21) cluster_log.csv, Acme (Shanghai AI Lab, NSDI'24) trace_seren.csv
# and trace_kalos.csv, and the Philly trace as HeliosArtifact converts it share these columns.
CLUSTER_LOG_COLUMNS = ("job_id", "gpu_num", "submit_time", "start_time", "end_time")
SACCT_COLUMNS = ("JobID", "Account", "Submit", "Start", "End")
PLAIN_COLUMNS = ("job_id", "tenant", "submit", "runtime", "accelerators")

# Bounds on what one job can be: past them a figure is a typo or a hostile file, and letting
# it through would overflow the engine's arithmetic or simulate for ever.
MAX_ACCELERATORS = 1_000_000
MAX_SECONDS = 10 * 365 * 86_400  # ten years: a runtime or a recorded wait
MAX_SUBMIT = 10_000_000_000  # seconds from the trace's origin (a Unix time in year 2286)

# The reasons a job is set aside rather than simulated; the report counts each.
NEVER_RAN = "never ran in the recorded trace (no runtime)"
NEVER_ENDED = "still running when the trace ends (no end time)"
NO_ACCELERATORS = "asks for no accelerators (CPU-only)"
ZERO_RUNTIME = "ran for zero seconds"

_NO_TIME = ("", "None", "Unknown", "NaT", "nan")


@dataclass
class Trace:
    """Jobs of one trace file, as columns (one entry per job, in file order). Numbers are kept
    in flat arrays and names shared between jobs, so a trace of millions of jobs stays small."""

    name: str
    path: Path
    kind: str
    submit: array[float] = field(default_factory=lambda: array("d"))
    runtime: array[float] = field(default_factory=lambda: array("d"))
    accelerators: array[int] = field(default_factory=lambda: array("i"))
    tenant: list[str] = field(default_factory=list)
    # Allowed accelerator classes, e.g. ("V100M16", "V100M32"); () means any class.
    classes: list[tuple[str, ...]] = field(default_factory=list)
    one_domain: array[int] = field(default_factory=lambda: array("b"))
    recorded_wait: array[float] = field(default_factory=lambda: array("d"))
    line: array[int] = field(default_factory=lambda: array("q"))
    set_aside: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    source_accelerators: int | None = None
    # One object per distinct tenant name and class set, however many jobs carry it.
    _names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _class_sets: dict[tuple[str, ...], tuple[str, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

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
        recorded_wait: float = float("nan"),
        line: int,
    ) -> None:
        self.submit.append(submit)
        self.runtime.append(runtime)
        self.accelerators.append(accelerators)
        self.tenant.append(self._names.setdefault(tenant, tenant))
        self.classes.append(self._class_sets.setdefault(classes, classes))
        self.one_domain.append(one_domain)
        self.recorded_wait.append(recorded_wait)
        self.line.append(line)


def load_trace(
    path: Path,
    kind: str = "auto",
    *,
    tenant_column: str | None = None,
    progress: Progress | None = None,
) -> Trace:
    """Load a trace; `kind` is alibaba, cluster-log, sacct, csv or auto (decided by the header
    line). `tenant_column` names the column read as the tenant instead of the kind's own
    (qos, user, Account, tenant); `progress` is called with (bytes read, total bytes) about
    every 1% of the file."""
    if kind == "auto":
        kind = _sniff(path)
    if kind not in _LOADERS:
        raise InvalidInput(
            f"{path}: unknown trace kind {kind!r} (use {', '.join(_LOADERS)} or auto)"
        )
    return _LOADERS[kind](path, tenant_column=tenant_column, progress=progress)


class _Row:
    """The fields of one line, read by column name; every refusal names the line and field."""

    __slots__ = ("fields", "index", "table")

    def __init__(self, table: Table, fields: list[str]) -> None:
        self.table = table
        self.index = table.index
        self.fields = fields

    def text(self, column: str) -> str:
        """The column's text, stripped; "" for a column the file does not have."""
        try:
            return self.fields[self.index[column]].strip()
        except KeyError:
            return ""

    def error(self, message: str) -> InvalidInput:
        return self.table.error(message)

    def integer(self, column: str) -> int:
        """A whole number, also written as 8.0 or 1e23 (pandas writes a count as 8.0 when its
        column has gaps); the caller bounds it."""
        text = self.text(column)
        try:
            return int(text)
        except ValueError:
            pass
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not value.is_integer():  # also NaN, infinities and 4,300 digits or more
            raise self.error(f"{column} must be an integer, not {shown(text)}")
        return int(value)

    def accelerators(self, column: str, *, ceiling: int = MAX_ACCELERATORS) -> int:
        count = self.integer(column)
        if count < 0:
            raise self.error(f"{column} {count} is negative")
        if count > ceiling:
            raise self.error(
                f"{column} {shown(self.text(column))} is out of range: at most "
                f"{ceiling:,} accelerators per job"
            )
        return count

    def number(self, column: str) -> float:
        text = self.text(column)
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise self.error(f"{column} must be a finite number, not {shown(text)}")
        return value

    def time(self, column: str) -> float:
        """A date and time (2024-05-01T12:00:00, 2020-06-09 18:41:01, with or without a
        zone) as seconds."""
        text = self.text(column)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.error(
                f"{column} must be a time like 2024-05-01T12:00:00, not {shown(text)}"
            ) from None
        # Local time without a zone (sacct, Helios): any fixed zone keeps differences right.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _duration(row: _Row, seconds: float, *, what: str, since: str, until: str) -> float:
    """`seconds` from column `since` to column `until`, checked: not negative, at most ten
    years. `what` is runtime or wait, for the message."""
    if seconds < 0:
        raise row.error(
            f"{until} {row.text(until)} is before {since} {row.text(since)} (negative {what})"
        )
    if seconds > MAX_SECONDS:
        raise row.error(
            f"{what} from {since} to {until} is out of range: at most {MAX_SECONDS:,} s (ten years)"
        )
    return seconds


def _recorded_run(
    row: _Row, trace: Trace, columns: tuple[str, str, str], runtime_word: str
) -> tuple[float, float, float] | None:
    """Submit time, runtime and recorded wait of a job logged with its (submit, start, end)
    `columns`; None, counted in `trace.set_aside`, for a job that never started, was still
    running when the log was cut, or ran for no time."""
    submitted, started, ended = columns
    if row.text(started) in _NO_TIME:
        trace.set_aside[NEVER_RAN] += 1
        return None
    if row.text(ended) in _NO_TIME:
        trace.set_aside[NEVER_ENDED] += 1
        return None
    submit, start, end = (row.time(c) for c in columns)
    runtime = _duration(row, end - start, what=runtime_word, since=started, until=ended)
    wait = _duration(row, start - submit, what="wait", since=submitted, until=started)
    if runtime == 0:
        trace.set_aside[ZERO_RUNTIME] += 1
        return None
    return submit, runtime, wait


def _seconds(row: _Row, column: str, *, ceiling: float) -> float:
    """A column of seconds (a runtime, a submit time, a wait): finite, 0 or more, bounded."""
    value = row.number(column)
    if value < 0:
        raise row.error(f"{column} {value:g} is negative")
    if value > ceiling:
        raise row.error(
            f"{column} {shown(row.text(column))} is out of range: at most {ceiling:,.0f} s"
        )
    return value


def _read(
    path: Path,
    *,
    kind: str,
    delimiter: str,
    required: tuple[str, ...],
    id_column: str,
    progress: Progress | None,
    add_job: Callable[[_Row, Trace, int], None],
    check_header: Callable[[Table], None] = lambda table: None,
    skip: Callable[[str], bool] = lambda job_id: False,
) -> Trace:
    """Stream `path` into a Trace, handing each job's row to `add_job`; job ids must be
    unique (rows whose id `skip` accepts, such as sacct's job steps, are not jobs).
    `check_header` refuses a header that lacks what `required` cannot say."""
    trace = Trace(name=path.stem, path=path, kind=kind)
    ids = array("q")  # a hash per job id: 8 bytes a job, not a set of strings
    with Table(
        path,
        what=f"{kind} trace",
        rows_are="jobs",
        delimiter=delimiter,
        required=required,
        progress=progress,
    ) as table:
        check_header(table)
        id_at = table.index[id_column]
        for line, fields in table:
            job_id = fields[id_at].strip()
            if skip(job_id):
                continue
            if not job_id:
                raise table.error(f"{id_column} is empty")
            ids.append(hash(job_id))
            add_job(_Row(table, fields), trace, line)
    _refuse_duplicate_ids(path, ids, kind=kind, delimiter=delimiter, id_column=id_column, skip=skip)
    return trace


def _refuse_duplicate_ids(
    path: Path,
    ids: array[int],
    *,
    kind: str,
    delimiter: str,
    id_column: str,
    skip: Callable[[str], bool],
) -> None:
    """Two jobs with one id are an export run twice or two files joined: refuse, naming both
    lines. Hashes find the candidates; a second read compares their actual ids."""
    hashes = np.sort(np.frombuffer(ids, dtype=np.int64))
    repeated = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not repeated:
        return
    first_line: dict[str, int] = {}
    with Table(
        path, what=f"{kind} trace", rows_are="jobs", delimiter=delimiter, required=(id_column,)
    ) as table:
        id_at = table.index[id_column]
        for line, fields in table:
            job_id = fields[id_at].strip()
            if skip(job_id) or hash(job_id) not in repeated:
                continue
            if job_id in first_line:
                raise InvalidInput(
                    f"{path} line {line}: {id_column} {shown(job_id)} repeats line "
                    f"{first_line[job_id]}; each job once (an export run twice, or two files "
                    "joined?)"
                )
            first_line[job_id] = line


def load_alibaba(
    path: Path, *, tenant_column: str | None = None, progress: Progress | None = None
) -> Trace:
    """openb_pod_list_*.csv. Runtime = deletion - scheduled; recorded wait = scheduled -
    creation. A GPU-sharing task (gpu_milli < 1000) is rounded up to one whole accelerator:
    the facility does not share accelerators between jobs. A pod never spans nodes, so every
    task asks for one interconnect domain. The tenant is the qos column."""
    tenant = tenant_column or "qos"
    fractional = 0

    def add_job(row: _Row, trace: Trace, line: int) -> None:
        nonlocal fractional
        count = row.accelerators("num_gpu")
        milli = row.integer("gpu_milli")
        if milli < 0:
            raise row.error(f"gpu_milli {milli} is negative")
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            return
        if not row.text("scheduled_time"):
            trace.set_aside[NEVER_RAN] += 1
            return
        created = _seconds(row, "creation_time", ceiling=MAX_SUBMIT)
        scheduled = row.integer("scheduled_time")
        deleted = row.integer("deletion_time")
        runtime = _duration(
            row, deleted - scheduled, what="duration", since="scheduled_time", until="deletion_time"
        )
        wait = _duration(
            row, scheduled - created, what="wait", since="creation_time", until="scheduled_time"
        )
        if runtime == 0:
            trace.set_aside[ZERO_RUNTIME] += 1
            return
        fractional += count == 1 and milli < 1000
        trace.add(
            submit=created,
            runtime=runtime,
            accelerators=count,
            tenant=row.text(tenant) or "default",
            classes=tuple(c for c in row.text("gpu_spec").split("|") if c),
            one_domain=True,
            recorded_wait=wait,
            line=line,
        )

    required = ALIBABA_COLUMNS + ((tenant_column,) if tenant_column else ())
    trace = _read(
        path,
        kind="alibaba",
        delimiter=",",
        required=required,
        id_column="name",
        progress=progress,
        add_job=add_job,
    )
    if fractional:
        trace.notes.append(
            f"{fractional} GPU-sharing tasks (gpu_milli < 1000) rounded up to one accelerator"
        )
    nodes = path.with_name("openb_node_list_gpu_node.csv")
    if nodes.exists():
        groups = read_node_list(nodes)
        trace.source_accelerators = sum(gpus * n for (_, gpus), n in groups.items())
    return trace


def load_cluster_log(
    path: Path, *, tenant_column: str | None = None, progress: Progress | None = None
) -> Trace:
    """A GPU-cluster job log with submit, start and end times: Helios `cluster_log.csv`
    (job_id, user, vc, gpu_num, cpu_num, node_num, state, submit_time, start_time, end_time,
    duration, queue), Acme `trace_seren.csv` / `trace_kalos.csv` (the same with type, and
    times with a zone) and Philly as a CSV of those columns. Runtime = end - start; recorded
    wait = start - submit; the tenant is the user column unless `tenant_column` names
    another (vc, type). A job without a start time never ran and is set aside; one without an
    end time was still running when the log was cut."""
    tenant = tenant_column or "user"

    def add_job(row: _Row, trace: Trace, line: int) -> None:
        count = row.accelerators("gpu_num")
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            return
        times = _recorded_run(row, trace, ("submit_time", "start_time", "end_time"), "runtime")
        if times is None:
            return
        submit, runtime, wait = times
        trace.add(
            submit=submit,
            runtime=runtime,
            accelerators=count,
            tenant=row.text(tenant) or "default",
            recorded_wait=wait,
            line=line,
        )

    return _read(
        path,
        kind="cluster-log",
        delimiter=",",
        required=(*CLUSTER_LOG_COLUMNS, tenant),
        id_column="job_id",
        progress=progress,
        add_job=add_job,
    )


_GPU_TRES = re.compile(r"gres/gpu(?::([A-Za-z0-9_.-]+))?=(\d+)")
_CPU_TRES = re.compile(r"(?:^|,)cpu=(\d+)")


def load_sacct(
    path: Path,
    *,
    tenant_column: str | None = None,
    progress: Progress | None = None,
    cpus_as_accelerators: bool = False,
) -> Trace:
    """`sacct -P -o JobID,Account,Submit,Start,End,AllocTRES,Partition` (or ReqTRES). Job
    steps (`123.batch`, `123.0`) are skipped; the accelerator count and class come from
    `gres/gpu[:TYPE]=N` in AllocTRES (ReqTRES when AllocTRES is absent or empty). Partition
    may be present but is not read: the simulated fleet has its own partitions. The tenant is
    the Account column. `cpus_as_accelerators`: a job without GPUs counts its `cpu=N` (a
    cluster of CPU partitions, such as the tests' Slurm)."""
    tenant = tenant_column or "Account"
    tres_columns: list[str] = []

    def find_tres(table: Table) -> None:
        tres_columns.extend(c for c in ("AllocTRES", "ReqTRES") if c in table.index)
        if not tres_columns:
            raise InvalidInput(f"{path}: missing column AllocTRES or ReqTRES (with gres/gpu=N)")

    def add_job(row: _Row, trace: Trace, line: int) -> None:
        tres = next((row.text(c) for c in tres_columns if row.text(c)), "")
        matches = _GPU_TRES.findall(tres)
        # gres/gpu=4 and gres/gpu:a100=4 may both be listed: they count the same GPUs.
        typed = [(kind, int(n)) for kind, n in matches if kind]
        count = sum(n for _, n in typed) if typed else sum(int(n) for _, n in matches)
        if not matches and cpus_as_accelerators:
            count = sum(int(n) for n in _CPU_TRES.findall(tres))
        if count > MAX_ACCELERATORS:
            raise row.error(
                f"gres/gpu {count:,} is out of range: at most {MAX_ACCELERATORS:,} accelerators "
                "per job"
            )
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            return
        times = _recorded_run(row, trace, ("Submit", "Start", "End"), "duration")
        if times is None:
            return
        submit, runtime, wait = times
        trace.add(
            submit=submit,
            runtime=runtime,
            accelerators=count,
            tenant=row.text(tenant) or "default",
            classes=tuple(sorted({kind for kind, _ in typed})),
            recorded_wait=wait,
            line=line,
        )

    return _read(
        path,
        kind="sacct",
        delimiter="|",
        required=SACCT_COLUMNS + ((tenant_column,) if tenant_column else ()),
        id_column="JobID",
        progress=progress,
        add_job=add_job,
        check_header=find_tres,
        skip=lambda job_id: "." in job_id,
    )


def load_plain(
    path: Path, *, tenant_column: str | None = None, progress: Progress | None = None
) -> Trace:
    """commonlab's CSV: job_id, tenant, submit, runtime, accelerators (seconds, integers or
    decimals); optional class (`H100|A100`, empty for any), one_domain (0/1), wait (recorded
    queueing delay, seconds)."""
    tenant = tenant_column or "tenant"

    def add_job(row: _Row, trace: Trace, line: int) -> None:
        runtime = _seconds(row, "runtime", ceiling=MAX_SECONDS)
        submit = _seconds(row, "submit", ceiling=MAX_SUBMIT)
        count = row.accelerators("accelerators")
        if count == 0:
            trace.set_aside[NO_ACCELERATORS] += 1
            return
        if runtime == 0:
            trace.set_aside[ZERO_RUNTIME] += 1
            return
        domain = row.text("one_domain")
        if domain not in ("0", "1", ""):
            raise row.error(f"one_domain must be 0 or 1, not {shown(domain)}")
        trace.add(
            submit=submit,
            runtime=runtime,
            accelerators=count,
            tenant=row.text(tenant) or "default",
            classes=tuple(c for c in row.text("class").split("|") if c),
            one_domain=domain == "1",
            recorded_wait=_seconds(row, "wait", ceiling=MAX_SECONDS)
            if row.text("wait")
            else float("nan"),
            line=line,
        )

    return _read(
        path,
        kind="csv",
        delimiter=",",
        required=("job_id", tenant, "submit", "runtime", "accelerators"),
        id_column="job_id",
        progress=progress,
        add_job=add_job,
    )


_LOADERS: dict[str, Callable[..., Trace]] = {
    "alibaba": load_alibaba,
    "cluster-log": load_cluster_log,
    "sacct": load_sacct,
    "csv": load_plain,
}


def _sniff(path: Path) -> str:
    """The kind from the header line alone; the loader then checks the file properly."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(MAX_LINE_BYTES).removeprefix(UTF8_BOM)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the trace ({exc.strerror})") from None
    header = first.decode("utf-8", errors="replace")
    if "|" in header and "JobID" in header:
        return "sacct"
    if "num_gpu" in header:
        return "alibaba"
    names = {name.strip() for name in header.split(",")}
    if {"submit_time", "start_time", "end_time", "gpu_num"} <= names:
        return "cluster-log"
    return "csv"
