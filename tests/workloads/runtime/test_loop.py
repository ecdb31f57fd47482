"""runtime/loop.py: a run stopped at step k (by its step limit, or by SIGTERM in a real
subprocess) and resumed from its checkpoint follows the uninterrupted run's losses and
ends with its weights; the step's loss is the same however the batch is split into
micro-batches; the schedule's shape; refusals of batch splits and foreign checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.errors import InvalidInput
from commonlab.workloads.config import TrainConfig
from commonlab.workloads.runtime.device import Runtime
from commonlab.workloads.runtime.lm import train_causal_lm
from commonlab.workloads.runtime.loop import (
    LATEST,
    learning_rate_factor,
    plan_batches,
    repeat_epochs,
    train,
)
from commonlab.workloads.runtime.paths import Paths
from tests.workloads.runtime.test_lm import job_paths, tiny_config
from tests.workloads.runtime.text_data import text_records, write_jsonl

REPOSITORY = Path(__file__).resolve().parents[3]
CPU = Runtime(torch.device("cpu"), torch.float32, "fp32")
# Resuming with another max_steps would change a decaying schedule: a constant one (after
# warm-up) makes "stop at k, go on to N" the same run as "go to N".
RESUMABLE = {"learning_rate": 1e-2, "warmup_steps": 3, "schedule": "constant"}
# Losses are compared to this absolute tolerance; on a CPU they come out bit-identical.
SAME = 1e-6


@pytest.fixture
def text_folder(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data", text_records(200))


@contextmanager
def one_thread() -> Iterator[None]:
    """torch's CPU kernels in one thread for the block, as OMP_NUM_THREADS=1 runs them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


def test_a_run_stopped_at_k_and_resumed_follows_the_uninterrupted_run(
    tmp_path: Path, text_folder: Path
) -> None:
    """GPT-2 keeps its dropout (0.1): the RNG states travel in the checkpoint too."""
    torch.use_deterministic_algorithms(True)
    config = tiny_config(optimizer=RESUMABLE, max_steps=12, checkpoint_every=4)
    whole = train_causal_lm(config, job_paths(tmp_path / "whole", text_folder))

    split = job_paths(tmp_path / "split", text_folder)
    first = train_causal_lm(config.model_copy(update={"max_steps": 5}), split)
    assert (split.scratch / LATEST).read_text().strip() == "step-00000005"
    assert sorted(p.name for p in split.scratch.glob("step-*")) == ["step-00000005"]
    second = train_causal_lm(config, split)

    assert first["losses"] == pytest.approx(whole["losses"][:5], abs=SAME)
    assert second["resumed_from_step"] == 5
    assert second["steps"] == 12 and second["tokens"] == whole["tokens"]
    assert second["losses"] == pytest.approx(whole["losses"], abs=SAME)
    expected, resumed = _weights(tmp_path / "whole" / "out"), _weights(split.out)
    assert expected.keys() == resumed.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=SAME, msg=name)


def test_sigterm_checkpoints_the_current_step_exits_143_and_the_run_resumes(
    tmp_path: Path, text_folder: Path
) -> None:
    config = tiny_config(optimizer=RESUMABLE, max_steps=100_000, log_every=1)
    config = config.model_copy(update={"checkpoint_every": 100_000})
    stopped = job_paths(tmp_path / "stopped", text_folder)
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json())
    command = [
        sys.executable,
        "-m",
        "commonlab.workloads.runtime",
        "train",
        *("--config", str(config_file), "--data", str(text_folder)),
        *("--out", str(stopped.out), "--scratch", str(stopped.scratch)),
        *("--metrics", str(stopped.metrics)),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=REPOSITORY, env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (stopped.metrics.exists() and stopped.metrics.read_text().strip()):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "training never reported a step"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr
    name = (stopped.scratch / LATEST).read_text().strip()
    k = int(name.removeprefix("step-"))
    assert k >= 1
    logged = [json.loads(line) for line in stopped.metrics.read_text().splitlines()]
    assert logged[-1]["step"] == k

    n = k + 3
    # The first k steps ran in one thread (OMP_NUM_THREADS above); the rest, and the run they
    # are compared with, run in one too: with another thread count the sums add up in another
    # order, and the losses drifted 3e-6 apart in CI.
    with one_thread():
        resumed = train_causal_lm(config.model_copy(update={"max_steps": n}), stopped)
        whole = train_causal_lm(
            config.model_copy(update={"max_steps": n}), job_paths(tmp_path / "whole", text_folder)
        )
    assert resumed["resumed_from_step"] == k
    assert resumed["losses"] == pytest.approx(whole["losses"], abs=SAME)


class _Regression:
    """A toy task: y = sum(x) learned by a small network (no dropout: splitting the batch
    differently would draw different masks)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )
        generator = torch.Generator().manual_seed(1)
        self.inputs = torch.randn(48, 4, generator=generator)
        self.targets = self.inputs.sum(dim=1, keepdim=True)

    def examples(self, start: int) -> Iterator[int]:
        return repeat_epochs(lambda: range(48), start=start, empty="no examples")

    def collate(self, examples: list[int]) -> dict[str, torch.Tensor]:
        return {"x": self.inputs[examples], "y": self.targets[examples]}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple:
        return ((model(batch["x"]) - batch["y"]) ** 2).sum(), len(batch["x"])


def _toy_run(root: Path, **settings: object) -> dict:
    config = TrainConfig.model_validate(
        {"max_steps": 6, "batch_size": 8, "log_every": 100, "checkpoint_every": 100, **settings}
    )
    paths = Paths(root, None, root / "out", root / "scratch", root / "metrics.jsonl")
    return train(_Regression(), config, paths=paths, runtime=CPU)


def test_the_step_loss_is_the_same_however_the_batch_is_split(tmp_path: Path) -> None:
    whole = _toy_run(tmp_path / "whole")
    accumulated = _toy_run(tmp_path / "accumulated", micro_batch_size=2)
    assert accumulated["losses"] == pytest.approx(whole["losses"], rel=1e-5)
    assert whole["losses"][-1] < whole["losses"][0]


def test_a_checkpoint_of_another_batch_size_is_refused(tmp_path: Path) -> None:
    _toy_run(tmp_path, max_steps=2)
    with pytest.raises(InvalidInput, match="batch_size 8, not 16"):
        _toy_run(tmp_path, max_steps=4, batch_size=16)


def test_batch_splits_that_do_not_divide_are_refused() -> None:
    assert plan_batches(8, 2, world_size=2, rank=1).accumulation == 2
    with pytest.raises(InvalidInput, match="over 3 processes"):
        plan_batches(8, None, world_size=3, rank=0)
    with pytest.raises(InvalidInput, match="micro_batch_size 3 must divide the 4"):
        plan_batches(8, 3, world_size=2, rank=0)


def test_the_schedule_warms_up_then_holds_or_decays() -> None:
    def factors(schedule: str) -> list[float]:
        return [learning_rate_factor(s, warmup=2, total=6, schedule=schedule) for s in range(6)]

    assert factors("constant") == [0.5, 1, 1, 1, 1, 1]
    assert factors("linear") == [0.5, 1, 1, 0.75, 0.5, 0.25]
    assert factors("cosine") == pytest.approx([0.5, 1, 1, 0.853553, 0.5, 0.146447], abs=1e-6)


def test_repeat_epochs_skips_whole_epochs_and_refuses_an_empty_one() -> None:
    stream = repeat_epochs(lambda: iter("abc"), start=7, empty="none")
    assert [next(stream) for _ in range(4)] == ["b", "c", "a", "b"]
    with pytest.raises(InvalidInput, match="nothing here"):
        next(repeat_epochs(lambda: iter(()), empty="nothing here"))


def test_each_checkpoint_saved_is_reported_as_a_metric(tmp_path: Path) -> None:
    """The share controller requeues the jobs that lose least first: it reads when a job last
    saved a checkpoint from this metric (compute/accounts.py `_checkpoints`)."""
    _toy_run(tmp_path, checkpoint_every=2, log_every=1)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    saved = [line for line in logged if CHECKPOINT_METRIC in line]
    assert [(line["step"], line[CHECKPOINT_METRIC]) for line in saved] == [(2, 2), (4, 4), (6, 6)]
    assert all("loss" not in line and line["time"] > 0 for line in saved)
