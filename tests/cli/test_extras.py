"""A command whose optional packages are missing says in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from commonlab.extras import extra_for

ROOT = Path(__file__).resolve().parents[2]

# Runs the CLI with the given packages made unimportable, as on a core-only install.
BLOCKED_RUN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from commonlab.cli.main import main
main(sys.argv[2:])
"""


def test_every_package_of_every_extra_names_its_extra():
    for requirement in metadata.requires("commonlab") or ():
        if 'extra == "' not in requirement or 'extra == "test"' in requirement:
            continue
        dist = requirement.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip()
        extra = requirement.split('extra == "')[1].rstrip('"')
        assert extra_for(dist.replace("-", "_")) == extra, dist
    assert extra_for("numpy.linalg") == "sim"
    assert extra_for("sqlalchemy") is None  # a core package missing is a bug, not an extra


def test_simulate_without_the_sim_extra_is_one_line(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,tenant,submit,runtime,accelerators\n1,a,0,60,1\n")
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, "numpy,matplotlib", "simulate",
         "--fleet", str(ROOT / "examples" / "fleet-100k.toml"), "--trace", str(trace),
         "--regulation", str(ROOT / "examples" / "regulation.json"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "pip install 'commonlab[sim]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, folded by the terminal
