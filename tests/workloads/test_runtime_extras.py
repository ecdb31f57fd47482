"""A workload whose packages the facility's Python lacks says, in the job's log, on one line,
which extra its operator should install (here: an index job without pydivsufsort)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BLOCKED = """
import sys
sys.modules["pydivsufsort"] = None
from commonlab.workloads.runtime.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_index_job_without_the_search_extra_says_which_to_install(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(json.dumps({"text": "hello there"}) + "\n")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"vocab_size": 300}))
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED, "index", "--config", str(config),
         "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
         "--scratch", str(tmp_path / "scratch"), "--metrics", str(tmp_path / "m.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: this index workload needs pydivsufsort, which the facility's Python lacks: "
        "its operator should pip install 'commonlab[search]'"
    ]
