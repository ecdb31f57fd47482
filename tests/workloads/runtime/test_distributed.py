"""Two processes under torchrun (gloo on the CPU) train as one process does with the same
global batch: the first process learns the tokenizer and the other loads it, the data is
shared out by step, the gradients are averaged by DDP, and only the first process writes
metrics and the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.workloads.config import TrainConfig
from commonlab.workloads.runtime.lm import train_causal_lm
from tests.workloads.runtime.test_lm import job_paths, tiny_config
from tests.workloads.runtime.text_data import text_records, write_jsonl

REPOSITORY = Path(__file__).resolve().parents[3]
# Per-step relative tolerance between the one-process and the two-process losses. Not exact:
# the two runs add the same numbers in another order (each process sums its half of the
# batch and gloo adds the halves; one process accumulates micro-batches into .grad; the
# two runs' matrix products also use different thread counts), and float addition is not
# associative. Measured here: at most 5e-8 relative over the 8 steps (most steps identical);
# 1e-4 leaves room for other CPUs' kernels; a wrong data split fails it on every step.
RELATIVE = 1e-4


def deterministic_config() -> TrainConfig:
    """A tiny GPT-2 without dropout, so one process and several compute the same sums (the
    runs that stand a distributed trajectory beside a single one use it)."""
    no_dropout = {"n_layer": 2, "n_embd": 32, "n_head": 2}
    no_dropout |= {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    return tiny_config(
        model={"architecture": "gpt2", "size": no_dropout},
        max_steps=8,
        log_every=2,
        checkpoint_every=4,
    )


@pytest.mark.slow
def test_two_processes_follow_the_one_process_run(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data", text_records(200))
    config = deterministic_config()
    # One process, accumulating two micro-batches of 4: the same sums as two processes of 4.
    single = train_causal_lm(
        config.model_copy(update={"micro_batch_size": 4}), job_paths(tmp_path / "one", data)
    )

    paths = job_paths(tmp_path / "two", data)
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json())
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "commonlab.workloads.runtime", "train", "--config", str(config_file)),
        *("--data", str(data), "--out", str(paths.out), "--scratch", str(paths.scratch)),
        *("--metrics", str(paths.metrics)),
    ]
    finished = subprocess.run(
        command,
        cwd=REPOSITORY,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]

    results = json.loads((paths.out / "results.json").read_text())
    assert results["processes"] == 2
    assert results["tokens"] == single["tokens"]
    assert results["losses"] == pytest.approx(single["losses"], rel=RELATIVE)
    learned = AutoTokenizer.from_pretrained(paths.out).get_vocab()
    assert learned == AutoTokenizer.from_pretrained(tmp_path / "one" / "out").get_vocab()
    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    logged = [entry for entry in lines if CHECKPOINT_METRIC not in entry]
    assert [entry["step"] for entry in logged] == [2, 4, 6, 8]  # once, from the first process
    assert [entry["step"] for entry in lines if CHECKPOINT_METRIC in entry] == [4, 8]
    checkpoint = paths.scratch / "step-00000008"
    assert sorted(p.name for p in checkpoint.glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
