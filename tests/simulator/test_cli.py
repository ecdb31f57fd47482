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
            "--out",
            str(out),
            "--load",
            "1.2",
            "--fidelity",
        ]
    )
    printed = capsys.readouterr().out
    assert "Policies side by side" in printed and "commonlab" in printed
    assert "utilisation" in printed and "fidelity (fifo" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["policies"]) == {"fifo", "commonlab"}
    assert report["workload"]["jobs"] == 200
    assert (out / "policies.svg").stat().st_size > 0
    assert (out / "shares.svg").stat().st_size > 0


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
