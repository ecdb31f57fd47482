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
    printed = capsys.readouterr().out
    assert "Policies side by side" in printed and "commonlab" in printed
    assert "utilisation" in printed and "Fidelity (fifo" in printed
    assert "set aside: 1 jobs: larger than any partition of its classes" in printed
    assert "Largest weekly deviation from the fair share" in printed
    assert "accelerator-hours lost" in printed
    assert "commonlab target: weekly share within ±2 points" in printed
    assert "commonlab target: utilisation at least FIFO's" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["policies"]) == {"fifo", "commonlab", "drf"}
    assert report["workload"]["jobs"] == 200
    assert report["workload"]["set_aside"] == {"larger than any partition of its classes": 1}
    for name in ("policies", "weekly", "shares", "fidelity-fifo"):
        assert (out / f"{name}.svg").stat().st_size > 0


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
