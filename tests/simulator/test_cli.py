"""`commonlab simulate` in-process: the table, the JSON report and the charts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from commonlab.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_compares_policies_and_writes_report_and_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "".join(
        f"{i},team{i % 4},{i * 30},{600 + (i * 37) % 900},{1 + i % 3},,0,{i % 7}\n"
        for i in range(200)
    )
    rows += "big,team0,10,600,99,,0,\n"  # larger than any partition: set aside, counted
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,tenant,submit,runtime,accelerators,class,one_domain,wait\n" + rows)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[sites]]\nname = "here"\ncountry = "CH"\n\n[[partitions]]\nname = "p"\n'
        'site = "here"\naccelerator = "H100"\nnodes = 4\naccelerators_per_node = 4\n'
        "nodes_per_domain = 2\n"
    )
    regulation = tmp_path / "regulation.json"
    shutil.copy(ROOT / "examples" / "regulation.json", regulation)
    out = tmp_path / "out"
    main(
        [
            "simulate",
            "--fleet",
            str(fleet),
            "--trace",
            str(trace),
            "--regulation",
            str(regulation),
            "--policy",
            "fifo",
            "--policy",
            "commonlab",
            "--policy",
            "drf",
            "--out",
            str(out),
            "--load",
            "1.2",
            "--fidelity",
        ]
    )
    printed = " ".join(capsys.readouterr().out.split())  # whatever the console's width
    assert "Policies side by side" in printed and "commonlab" in printed
    assert "utilisation" in printed and "Fidelity (fifo" in printed
    assert "set aside: 1 jobs: larger than any partition of its classes" in printed
    assert "Largest weekly deviation from the fair share" in printed
    assert "accelerator-hours lost" in printed
    assert "commonlab target: weekly share within ±2 points" in printed
    assert "commonlab target: utilisation within 0.5 points of the best: " in printed
    # Dealt by file order, with the numbers of what that and the load did to the workload.
    assert "warning: no --map, --map-file or --trace-pool: pools dealt round-robin" in printed
    assert "warning: offered load 1.20 is above 1" in printed
    assert "Demand against entitlement, and waits (mean / p99) per pool" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["policies"]) == {"fifo", "commonlab", "drf"}
    assert report["workload"]["jobs"] == 200
    assert report["workload"]["set_aside"] == {"larger than any partition of its classes": 1}
    demand = report["workload"]["pools"]
    assert sum(p["demand_share"] for p in demand.values()) == pytest.approx(1.0)
    assert demand["national:DE"]["entitled"] == pytest.approx(0.12)
    assert {c["verdict"] for c in report["targets"]} <= {"met", "NOT met", "not tested"}
    for figures in report["policies"].values():
        assert set(figures["per_pool"]) == set(demand)
    for name in ("policies", "demand", "weekly", "shares", "fidelity-fifo"):
        assert (out / f"{name}.svg").stat().st_size > 0
    fidelity_chart = (out / "fidelity-fifo.svg").read_text()
    assert "simulated (fifo) against recorded" in fidelity_chart
    assert "trace: jobs.csv" in fidelity_chart and "fleet: 16 accelerators" in fidelity_chart


def test_simulate_reports_bad_input_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "jobs.csv"
    trace.write_text("job_id,tenant,submit\n1,a,0\n")
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "simulate",
                "--fleet",
                str(ROOT / "examples" / "fleet-100k.toml"),
                "--trace",
                str(trace),
                "--regulation",
                str(ROOT / "examples" / "regulation.json"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert exited.value.code == 1
    assert "missing column(s) runtime, accelerators" in capsys.readouterr().err


def test_simulate_reads_an_alibaba_node_list_as_the_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = tmp_path / "openb_node_list_gpu_node.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,2,V100M16\nn1,1,1,2,V100M16\n")
    pods = tmp_path / "openb_pod_list_x.csv"
    pods.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
        "deletion_time,scheduled_time\n"
        "p0,1,1,2,1000,,LS,Running,0,100,0\n"
        "p1,1,1,2,1000,,LS,Running,0,100,0\n"
        "p2,1,1,2,1000,,LS,Running,10,150,50\n"  # waited 40 s in the trace, 90 s here
    )
    main(
        [
            "simulate",
            "--fleet",
            str(nodes),
            "--trace",
            str(pods),
            "--regulation",
            str(ROOT / "examples" / "regulation.json"),
            "--policy",
            "fifo",
            "--fidelity",
            "--max-runtime-h",
            "0",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["fleet"]["partitions"] == {
        "v100m16-2": {"class": "V100M16", "accelerators": 4, "domains": 2}
    }
    fidelity = report["policies"]["fifo"]["fidelity"]
    assert fidelity["recorded_p99_s"] == pytest.approx(40, abs=1)
    assert fidelity["simulated_mean_s"] == pytest.approx(30)
    assert fidelity["ks"] == pytest.approx(1 / 3)


def test_a_bad_node_list_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,two,V100M16\n")
    with pytest.raises(SystemExit):
        main(
            [
                "simulate",
                "--fleet",
                str(nodes),
                "--trace",
                str(nodes),
                "--regulation",
                str(ROOT / "examples" / "regulation.json"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert "nodes.csv line 2: gpu must be an integer, not 'two'" in capsys.readouterr().err


def _workload(tmp_path: Path, rows: str, *, waits: bool = True) -> list[str]:
    """The command line for a trace of `rows` (job_id,tenant,submit,runtime,accelerators
    [,wait]) on 16 accelerators under the example regulation."""
    trace = tmp_path / "jobs.csv"
    header = "job_id,tenant,submit,runtime,accelerators" + (",wait" if waits else "")
    trace.write_text(header + "\n" + rows)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[sites]]\nname = "here"\ncountry = "CH"\n\n[[partitions]]\nname = "p"\n'
        'site = "here"\naccelerator = "H100"\nnodes = 4\naccelerators_per_node = 4\n'
    )
    return [
        "simulate",
        "--fleet",
        str(fleet),
        "--trace",
        str(trace),
        "--regulation",
        str(ROOT / "examples" / "regulation.json"),
        "--out",
        str(tmp_path / "out"),
    ]


def _error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code != 0
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


ROWS = "".join(f"{i},team{i % 3},{i * 60},{600 + i},{1 + i % 2},{i}\n" for i in range(30))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--max-runtime-h", "-1"], "--max-runtime-h must be a number of hours, 0 or more"),
        (["--max-runtime-h", "nan"], "--max-runtime-h must be a number of hours"),
        (["--max-runtime-h", "inf"], "--max-runtime-h must be a number of hours"),
        (["--load", "0"], "--load must be above 0 and at most 10, not 0.0"),
        (["--load", "-0.5"], "--load must be above 0"),
        (["--load", "11"], "--load must be above 0 and at most 10, not 11.0"),
        (["--jobs", "0"], "--jobs must be at least 1, not 0"),
        (["--size-scale", "0"], "--size-scale must be at least 1, not 0"),
        (["--scale-to", "0"], "--scale-to must be at least 1, not 0"),
        (["--map", "team0"], "--map 'team0': write NAME=POOL"),
        (["--map", "team0=XX"], "--map team0=XX: unknown pool 'XX'"),
        (["--map", "team0=DE"], "tenant 'team1' of"),
        (["--map", "team*=DE", "--map", "*0=FR"], "tenant 'team0' is mapped twice"),
        (["--trace-pool", "jobs.csv=DE", "--map", "team1=FR"], "is mapped twice"),
    ],
)
def test_each_bad_option_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    err = _error([*_workload(tmp_path, ROWS), *option], capsys)
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_fidelity_without_recorded_waits_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "".join(f"{i},team{i % 3},{i * 60},600,1\n" for i in range(10))
    err = _error([*_workload(tmp_path, rows, waits=False), "--fidelity"], capsys)
    assert err == (
        "error: --fidelity: jobs.csv records no queueing wait (a wait column, sacct's Start "
        "and Submit, Alibaba's scheduled_time): drop --fidelity or give a trace with recorded "
        "waits"
    )
    assert not (tmp_path / "out").exists()


def test_the_operators_map_and_targets_not_tested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "map.csv"
    mapping.write_text("tenant,pool\nteam0,DE\nteam*,national:FR\n")
    # Jobs far apart on an idle fleet: none waits, so no share target can be tested.
    rows = "".join(f"{i},team{i % 3},{i * 3600},600,1,0\n" for i in range(12))
    main([*_workload(tmp_path, rows), "--map-file", str(mapping), "--max-runtime-h", "0"])
    printed = " ".join(capsys.readouterr().out.split())  # whatever the console's width
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    demand = report["workload"]["pools"]
    assert demand["national:DE"]["jobs"] == 4 and demand["national:FR"]["jobs"] == 8
    assert demand["national:FR"]["demand_share"] == pytest.approx(2 / 3)
    assert "tenants mapped to pools as the operator said: 1 by name, 2 by pattern" in printed
    assert "round-robin" not in printed
    assert "get no work from this workload" in printed
    assert {c["verdict"] for c in report["targets"]} == {"not tested"}
    assert (
        "commonlab target: weekly share within ±2 points where any policy holds it: not tested (no "
        "pool waited an hour in any week)" in printed
    )
    assert " met" not in printed.replace("NOT met", "")


def test_a_loader_that_reports_progress_gets_a_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from commonlab.simulator import traces

    real = traces.load_trace
    reported = []

    def load_trace(path: Path, kind: str = "auto", *, progress=None):
        size = path.stat().st_size
        progress(size // 2, size)
        progress(size, size)
        reported.append(path.name)
        return real(path, kind)

    monkeypatch.setattr(traces, "load_trace", load_trace)
    main([*_workload(tmp_path, ROWS), "--policy", "fifo"])
    assert reported == ["jobs.csv"]
    assert (tmp_path / "out" / "report.json").exists()
