"""Hostile input to every reader of the simulator's files: each is refused with one line naming
the file, the line and the field, and nothing is returned; an Excel BOM is accepted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from commonlab.errors import InvalidInput
from commonlab.simulator import textfile
from commonlab.simulator.inputs import load_fleet, load_regulation
from commonlab.simulator.traces import load_trace

BOM = b"\xef\xbb\xbf"
HUGE_COUNT = "1" + "0" * 23  # 1e23 accelerators, written out as an integer
COUNT_RANGE = "is out of range: at most 1,000,000 accelerators per job"
TEN_YEARS = "is out of range: at most 315,360,000 s"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Kind:
    """One trace format: a header, a valid line per job id, and hostile lines with the words
    the refusal must contain."""

    name: str
    file: str
    header: str
    ok: Callable[[str], str]
    latin1_field: Callable[[str], str]  # a valid line whose tenant is the given text
    huge_count: tuple[str, str]
    huge_seconds: tuple[str, str]
    not_finite: tuple[str, str]
    negative_wait: tuple[str, str]
    id_column: str


ALIBABA = Kind(
    name="alibaba",
    file="openb_pod_list_x.csv",
    header="name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time",
    ok=lambda job: f"{job},1,1,1,1000,,LS,Running,0,100,10",
    latin1_field=lambda qos: f"p9,1,1,1,1000,,{qos},Running,0,100,10",
    huge_count=(f"p9,1,1,{HUGE_COUNT},1000,,LS,Running,0,100,10", f"num_gpu '{HUGE_COUNT}' "),
    huge_seconds=(
        "p9,1,1,1,1000,,LS,Running,0,1" + "0" * 300 + ",10",
        "duration from scheduled_time to deletion_time " + TEN_YEARS,
    ),
    not_finite=("p9,1,1,1,1000,,LS,Running,nan,100,10", "creation_time must be a finite number"),
    negative_wait=(
        "p9,1,1,1,1000,,LS,Running,50,100,10",
        "scheduled_time 10 is before creation_time 50 (negative wait)",
    ),
    id_column="name",
)
CLUSTER_LOG = Kind(
    name="cluster-log",
    file="cluster_log.csv",
    header="job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,"
    "duration,queue",
    ok=lambda job: (
        f"{job},uA,vcX,8,8,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:11,"
        "2020-06-09 19:41:11,3600,10"
    ),
    latin1_field=lambda user: (
        f"9,{user},vcX,8,8,1,COMPLETED,2020-06-09 18:41:01,"
        "2020-06-09 18:41:11,2020-06-09 19:41:11,3600,10"
    ),
    huge_count=(
        f"9,uA,vcX,{HUGE_COUNT},8,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:11,"
        "2020-06-09 19:41:11,3600,10",
        f"gpu_num '{HUGE_COUNT}' ",
    ),
    huge_seconds=(
        "9,uA,vcX,8,8,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:11,"
        "9999-12-31 23:59:59,3600,10",
        "runtime from start_time to end_time " + TEN_YEARS,
    ),
    not_finite=(
        "9,uA,vcX,8,8,1,COMPLETED,NaN,2020-06-09 18:41:11,2020-06-09 19:41:11,3600,10",
        "submit_time must be a time like",
    ),
    negative_wait=(
        "9,uA,vcX,8,8,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:40:00,"
        "2020-06-09 19:41:11,3600,10",
        "start_time 2020-06-09 18:40:00 is before submit_time 2020-06-09 18:41:01 (negative wait)",
    ),
    id_column="job_id",
)
SACCT = Kind(
    name="sacct",
    file="sacct.txt",
    header="JobID|Account|Submit|Start|End|AllocTRES|Partition",
    ok=lambda job: (
        f"{job}|physics|2024-05-01T10:00:00|2024-05-01T10:05:00|2024-05-01T11:05:00|gres/gpu=4|gpu"
    ),
    latin1_field=lambda account: (
        f"9|{account}|2024-05-01T10:00:00|2024-05-01T10:05:00|2024-05-01T11:05:00|gres/gpu=4|gpu"
    ),
    huge_count=(
        "9|physics|2024-05-01T10:00:00|2024-05-01T10:05:00|2024-05-01T11:05:00|"
        f"gres/gpu={HUGE_COUNT}|gpu",
        "gres/gpu 100,000,000,000,000,000,000,000 ",
    ),
    huge_seconds=(
        "9|physics|2024-05-01T10:00:00|2024-05-01T10:05:00|9999-12-31T23:59:59|gres/gpu=4|gpu",
        "duration from Start to End " + TEN_YEARS,
    ),
    not_finite=(
        "9|physics|inf|2024-05-01T10:05:00|2024-05-01T11:05:00|gres/gpu=4|gpu",
        "Submit must be a time like",
    ),
    negative_wait=(
        "9|physics|2024-05-01T10:10:00|2024-05-01T10:05:00|2024-05-01T11:05:00|gres/gpu=4|gpu",
        "Start 2024-05-01T10:05:00 is before Submit 2024-05-01T10:10:00 (negative wait)",
    ),
    id_column="JobID",
)
PLAIN = Kind(
    name="csv",
    file="jobs.csv",
    header="job_id,tenant,submit,runtime,accelerators,class,one_domain,wait",
    ok=lambda job: f"{job},physics,0,3600,4,,0,",
    latin1_field=lambda tenant: f"9,{tenant},0,3600,4,,0,",
    huge_count=(f"9,physics,0,3600,{HUGE_COUNT},,0,", f"accelerators '{HUGE_COUNT}' "),
    huge_seconds=("9,physics,0,1e300,4,,0,", "runtime '1e300' " + TEN_YEARS),
    not_finite=("9,physics,0,inf,4,,0,", "runtime must be a finite number, not 'inf'"),
    negative_wait=("9,physics,0,3600,4,,0,-5", "wait -5 is negative"),
    id_column="job_id",
)
KINDS = [ALIBABA, CLUSTER_LOG, SACCT, PLAIN]
by_name = pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(load: Callable[[Path], Any], path: Path, *words: str) -> str:
    """`load(path)` raises one line naming the file and containing `words`."""
    with pytest.raises(InvalidInput) as caught:
        load(path)
    message = caught.value.message
    assert message.startswith(str(path)), message
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def trace_file(tmp_path: Path, kind: Kind, *lines: str) -> Path:
    return write(tmp_path, kind.file, "\n".join((kind.header, *lines, "")).encode())


# Traces ----------------------------------------------------------------------------------


@by_name
def test_a_binary_file_is_refused(tmp_path: Path, kind: Kind) -> None:
    data = f"{kind.header}\n".encode() + bytes(range(256)) * 4
    offset = len(kind.header) + 1
    refused(
        load_trace, write(tmp_path, kind.file, data), f"line 2: a NUL byte at byte offset {offset}"
    )


@by_name
def test_latin1_text_is_refused_with_its_byte_offset(tmp_path: Path, kind: Kind) -> None:
    first = kind.ok("1")
    data = f"{kind.header}\n{first}\n".encode() + kind.latin1_field("Müller").encode("latin-1")
    offset = len(kind.header) + len(first) + 2 + kind.latin1_field("Müller").index("ü")
    refused(
        load_trace,
        write(tmp_path, kind.file, data),
        f"line 3: not UTF-8 (byte 0xfc at byte offset {offset}",
        "re-save the file as UTF-8",
    )


@by_name
def test_an_excel_export_with_a_bom_is_accepted(tmp_path: Path, kind: Kind) -> None:
    """Excel's "CSV UTF-8": a BOM before the header and CRLF line ends."""
    data = BOM + "\r\n".join((kind.header, kind.ok("1"), kind.ok("2"), "")).encode()
    trace = load_trace(write(tmp_path, kind.file, data))
    assert trace.kind == kind.name
    assert len(trace) == 2


@by_name
def test_a_file_whose_lines_end_in_a_carriage_return_alone_loads(
    tmp_path: Path, kind: Kind
) -> None:
    """Classic Mac OS line ends (Excel for Mac's "CSV (Macintosh)"), with and without a last
    line end: read as lines, not refused as one line longer than 64 KiB."""
    for end in ("\r", ""):
        data = "\r".join((kind.header, *(kind.ok(str(i)) for i in range(1, 3001)))) + end
        trace = load_trace(write(tmp_path, kind.file, data.encode()))
        assert len(trace) == 3000


@by_name
def test_a_long_line_among_carriage_return_lines_is_refused(tmp_path: Path, kind: Kind) -> None:
    data = "\r".join((kind.header, kind.ok("1"), "x" * 100_000, kind.ok("2"))).encode()
    refused(load_trace, write(tmp_path, kind.file, data), "line 3: longer than 64 KiB")


@by_name
def test_1e23_accelerators_are_out_of_range(tmp_path: Path, kind: Kind) -> None:
    line, field = kind.huge_count
    refused(
        load_trace, trace_file(tmp_path, kind, kind.ok("1"), line), "line 3: " + field, COUNT_RANGE
    )


@pytest.mark.parametrize(
    ("count", "loads"), [("4.0", 4), ("1e23", None), ("4.5", None), ("nan", None)]
)
def test_counts_written_as_decimals(tmp_path: Path, count: str, loads: int | None) -> None:
    """pandas writes a count as 4.0 when its column has gaps: a whole number is read, 1e23 is
    out of range, 4.5 and nan are not counts."""
    path = trace_file(tmp_path, PLAIN, f"9,physics,0,3600,{count},,0,")
    if loads:
        assert list(load_trace(path).accelerators) == [loads]
    elif count == "1e23":
        refused(load_trace, path, "line 2: accelerators '1e23' " + COUNT_RANGE)
    else:
        refused(load_trace, path, f"line 2: accelerators must be an integer, not '{count}'")


@by_name
def test_centuries_of_runtime_are_out_of_range(tmp_path: Path, kind: Kind) -> None:
    line, words = kind.huge_seconds
    refused(load_trace, trace_file(tmp_path, kind, kind.ok("1"), line), "line 3: " + words)


@by_name
def test_nan_and_infinity_are_refused(tmp_path: Path, kind: Kind) -> None:
    line, words = kind.not_finite
    refused(load_trace, trace_file(tmp_path, kind, line), "line 2: " + words)


@by_name
def test_a_line_longer_than_64_kib_is_refused_unread(tmp_path: Path, kind: Kind) -> None:
    """A file that is one huge line stops after 64 KiB of it, not after reading it all."""
    data = f"{kind.header}\n{kind.ok('1')}\n".encode() + b"x" * (4 * 1024 * 1024)
    message = refused(load_trace, write(tmp_path, kind.file, data), "line 3: longer than 64 KiB")
    stopped_at = int(message.split("stopped reading at byte ")[1].split(")")[0].replace(",", ""))
    assert stopped_at <= len(data) - 4 * 1024 * 1024 + textfile.MAX_LINE_BYTES + 1


@by_name
def test_a_negative_recorded_wait_is_refused(tmp_path: Path, kind: Kind) -> None:
    line, words = kind.negative_wait
    refused(load_trace, trace_file(tmp_path, kind, kind.ok("1"), line), "line 3: " + words)


@by_name
def test_duplicate_job_ids_name_both_lines(tmp_path: Path, kind: Kind) -> None:
    path = trace_file(tmp_path, kind, kind.ok("1"), kind.ok("2"), kind.ok("3"), kind.ok("2"))
    refused(load_trace, path, f"line 5: {kind.id_column} '2' repeats line 3")


@by_name
def test_an_empty_file_is_refused(tmp_path: Path, kind: Kind) -> None:
    refused(lambda p: load_trace(p, kind.name), write(tmp_path, kind.file, b""), "empty file")


@by_name
def test_a_header_without_jobs_is_refused(tmp_path: Path, kind: Kind) -> None:
    refused(load_trace, trace_file(tmp_path, kind), "a header line and no jobs")


def test_progress_is_reported_about_every_percent(tmp_path: Path) -> None:
    path = trace_file(tmp_path, PLAIN, *(PLAIN.ok(str(i)) for i in range(5_000)))
    seen: list[tuple[int, int]] = []
    trace = load_trace(path, progress=lambda done, total: seen.append((done, total)))
    assert len(trace) == 5_000
    size = path.stat().st_size
    assert seen[-1] == (size, size)
    assert all(total == size for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert 90 <= len(seen) <= 110


# Node lists and documents ----------------------------------------------------------------

NODES = "sn,cpu_milli,memory_mib,gpu,model\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (NODES.encode() + b"n1,1,1,8,V100\x00\x00\n", ["line 2: a NUL byte at byte offset 47"]),
        (NODES.encode() + "n1,1,1,8,Vü\n".encode("latin-1"), ["line 2: not UTF-8 (byte 0xfc"]),
        ((NODES + f"n1,1,1,{HUGE_COUNT},V100\n").encode(), ["line 2: gpu '1000", "0 to 1024"]),
        ((NODES + "n1,1,1,nan,V100\n").encode(), ["line 2: gpu must be an integer, not 'nan'"]),
        (NODES.encode() + b"n" * 100_000, ["line 2: longer than 64 KiB"]),
        (b"", ["empty file"]),
        (NODES.encode(), ["a header line and no nodes"]),
        (
            (NODES + "n1,1,1,8,V100\nn2,1,1,8,V100\nn1,1,1,8,V100\n").encode(),
            ["line 4: sn 'n1' repeats line 2"],
        ),
    ],
    ids=["binary", "latin1", "huge", "nan", "long-line", "empty", "header-only", "duplicate"],
)
def test_a_hostile_node_list_is_refused(tmp_path: Path, data: bytes, words: list[str]) -> None:
    refused(load_fleet, write(tmp_path, "nodes.csv", data), *words)


def test_a_node_list_with_a_bom_loads(tmp_path: Path) -> None:
    fleet = load_fleet(write(tmp_path, "nodes.csv", BOM + (NODES + "n1,1,1,8,V100\n").encode()))
    assert fleet.partitions[0].accelerators == 8


DOCUMENTS = [
    ("fleet.toml", EXAMPLES / "fleet-100k.toml", load_fleet),
    ("regulation.json", EXAMPLES / "regulation.json", load_regulation),
]
# An empty TOML file is an empty table, so the fleet schema names what it lacks.
EMPTY_DOCUMENT_SAYS = {"fleet.toml": "sites: Field required", "regulation.json": "not valid JSON"}
by_document = pytest.mark.parametrize(
    ("name", "example", "load"), DOCUMENTS, ids=[d[0] for d in DOCUMENTS]
)


@by_document
def test_a_binary_document_is_refused(
    tmp_path: Path, name: str, example: Path, load: Callable[[Path], Any]
) -> None:
    data = example.read_bytes()
    line = data[:40].count(b"\n") + 1
    path = write(tmp_path, name, data[:40] + b"\x00" + data[40:])
    refused(load, path, f"line {line}: a NUL byte at byte offset 40")


@by_document
def test_a_latin1_document_is_refused(
    tmp_path: Path, name: str, example: Path, load: Callable[[Path], Any]
) -> None:
    path = write(tmp_path, name, b"# \xe9\n" + example.read_bytes())
    refused(load, path, "line 1: not UTF-8 (byte 0xe9 at byte offset 2", "re-save")


@by_document
def test_a_document_with_a_bom_loads(
    tmp_path: Path, name: str, example: Path, load: Callable[[Path], Any]
) -> None:
    assert load(write(tmp_path, name, BOM + example.read_bytes())) == load(example)


@by_document
def test_an_oversized_document_is_refused(
    tmp_path: Path,
    name: str,
    example: Path,
    load: Callable[[Path], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(textfile, "MAX_DOCUMENT_BYTES", 1024)
    path = write(tmp_path, name, example.read_bytes() + b" " * 2048)
    refused(load, path, "larger than")


@by_document
def test_an_empty_document_is_refused(
    tmp_path: Path, name: str, example: Path, load: Callable[[Path], Any]
) -> None:
    refused(load, write(tmp_path, name, b""), EMPTY_DOCUMENT_SAYS[name])
