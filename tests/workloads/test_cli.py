"""`commonlab train` end to end on a served demo facility and its local executor: the PI
publishes a text dataset, submits a training workload from the CLI and watches it; inside the
job, `commonlab workload run` pulls the dataset, trains a tiny GPT-2 and publishes it with a
generated card, stamped weights and its lineage down to the dataset version."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.conftest import Demo
from tests.journeys.workloads import TEXT_TOML as TRAIN_TOML
from tests.journeys.workloads import text_dataset


def as_pi(monkeypatch, demo: Demo) -> None:
    monkeypatch.setenv("COMMONLAB_URL", demo.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", demo.pi_token)


def corpus(capsys, tmp_path: Path) -> None:
    """Short stories, each record with its source and licence, as proj-1/stories@1."""
    folder = tmp_path / "corpus"
    text_dataset(folder)
    code, _, err = run(capsys, "dataset", "push", str(folder), "--repo", "proj-1/stories",
                       "--license", "CC0-1.0", "-m", "stories")  # fmt: skip
    assert code == 0, err


@pytest.mark.slow
def test_train_from_the_cli_publishes_a_model_with_its_card_and_lineage(
    demo,
    capsys,
    monkeypatch,
    tmp_path,
):
    as_pi(monkeypatch, demo)
    corpus(capsys, tmp_path)
    config = tmp_path / "tiny.toml"
    config.write_text(TRAIN_TOML)
    code, out, err = run(capsys, "train", "-p", "proj-1", "--config", str(config),
                         "--dataset", "proj-1/stories", "--out", "tiny-gpt2", "--time", "10",
                         "--watch")  # fmt: skip
    assert code == 0, out + err
    job_id = int(re.search(r"admitted as job (\d+)", out).group(1))
    assert "succeeded" in out
    assert "models/proj-1/tiny-gpt2@1 published and signed" in out

    api = http_client(base_url=demo.url, timeout=30)
    version = api.get("/api/v1/artifacts/models/proj-1/tiny-gpt2/versions/1").json()
    assert version["job"] == str(job_id) and version["licenses"] == ["CC0-1.0"]
    paths = {f["path"] for f in version["files"]}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= paths
    workload = api.get(f"/api/v1/workloads/{job_id}",
                       headers={"Authorization": f"Bearer {demo.pi_token}"}).json()  # fmt: skip
    card = version["card"]
    assert card["meta"]["datasets"] == ["datasets/proj-1/stories@1"]
    assert workload["config_sha256"] in card["body"]
    lineage = api.get("/api/v1/artifacts/models/proj-1/tiny-gpt2/versions/1/lineage").json()
    assert {"from": "models/proj-1/tiny-gpt2@1", "to": "datasets/proj-1/stories@1",
            "relation": "trained_on", "job": str(job_id)} in lineage["edges"]  # fmt: skip
    # The weights say which version and job they are, inside the file.
    weights = next(f for f in version["files"] if f["path"] == "model.safetensors")
    assert weights["meta"]["metadata"]["commonlab.job"] == str(job_id)


def test_a_config_mistake_names_the_file_and_field_before_anything_is_sent(
    demo,
    capsys,
    monkeypatch,
    tmp_path,
):
    as_pi(monkeypatch, demo)
    config = tmp_path / "bad.toml"
    config.write_text('[model]\narchitecture = "bert"\n')
    code, _, err = run(capsys, "train", "-p", "proj-1", "--config", str(config),
                       "--dataset", "proj-1/stories@1", "--out", "x")  # fmt: skip
    assert code == 1
    assert "bad.toml: model.architecture: Input should be 'gpt2', 'llama' or 'wav2vec2'" in err
    config.write_text("max_steps = [")
    code, _, err = run(capsys, "train", "-p", "proj-1", "--config", str(config))
    assert code == 1 and "not valid TOML" in err
    code, _, err = run(capsys, "train", "-p", "proj-1", "--config", str(tmp_path / "nope.toml"))
    assert code == 1 and "cannot read" in err


LORA_TOML = """
method = "lora"
format = "chat"
sequence_length = 64
batch_size = 4
max_steps = 4
log_every = 1

[lora]
r = 4
alpha = 8
"""

EVALUATE_TOML = """
task = "tiny-arithmetic"
scorer = "includes"
max_new_tokens = 4
"""


def push_base_model(capsys, tmp_path: Path) -> None:
    from tests.workloads.runtime.base_model import make_base_model

    folder = make_base_model(tmp_path / "base")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# base\n")
    code, _, err = run(capsys, "model", "push", str(folder), "--repo", "proj-1/base")
    assert code == 0, err


def push_jsonl(capsys, tmp_path: Path, name: str, rows: list[dict]) -> None:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, _, err = run(capsys, "dataset", "push", str(folder), "--repo", f"proj-1/{name}",
                       "--license", "CC0-1.0")  # fmt: skip
    assert code == 0, err


@pytest.mark.slow
def test_finetune_from_the_cli_publishes_an_adapter_derived_from_its_base(
    demo, capsys, monkeypatch, tmp_path
):
    as_pi(monkeypatch, demo)
    push_base_model(capsys, tmp_path)
    chats = [
        {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                      {"role": "assistant", "content": f"{a} plus {b} is {a + b}."}]}
        for a in range(4) for b in range(4)
    ]  # fmt: skip
    push_jsonl(capsys, tmp_path, "chats", chats)
    config = tmp_path / "lora.toml"
    config.write_text(LORA_TOML)
    code, out, err = run(capsys, "finetune", "-p", "proj-1", "--config", str(config),
                         "--model", "proj-1/base", "--dataset", "proj-1/chats",
                         "--out", "base-lora", "--time", "10", "--watch")  # fmt: skip
    assert code == 0, out + err
    job_id = re.search(r"admitted as job (\d+)", out).group(1)

    api = http_client(base_url=demo.url, timeout=30)
    version = api.get("/api/v1/artifacts/models/proj-1/base-lora/versions/1").json()
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {
        f["path"] for f in version["files"]
    }
    assert version["card"]["meta"]["base_model"] == "models/proj-1/base@1"
    edges = api.get("/api/v1/artifacts/models/proj-1/base-lora/versions/1/lineage").json()
    relations = {(e["to"], e["relation"], e["job"]) for e in edges["edges"]}
    assert ("datasets/proj-1/chats@1", "trained_on", job_id) in relations
    assert ("models/proj-1/base@1", "derived_from", job_id) in relations


@pytest.mark.slow
def test_evaluate_from_the_cli_publishes_the_log_and_the_scores_with_their_root(
    demo, capsys, monkeypatch, tmp_path
):
    from commonlab.workloads.runtime.evaluate import sample_root_of

    as_pi(monkeypatch, demo)
    push_base_model(capsys, tmp_path)
    qa = [{"input": f"{a} plus {b} is", "target": str(a + b)} for a in range(3) for b in range(2)]
    push_jsonl(capsys, tmp_path, "arithmetic", qa)
    config = tmp_path / "evaluate.toml"
    config.write_text(EVALUATE_TOML)
    code, out, err = run(capsys, "evaluate", "-p", "proj-1", "--config", str(config),
                         "--model", "proj-1/base", "--dataset", "proj-1/arithmetic",
                         "--out", "base-evals", "--time", "10", "--watch")  # fmt: skip
    assert code == 0, out + err
    job_id = int(re.search(r"admitted as job (\d+)", out).group(1))

    api = http_client(base_url=demo.url, timeout=30)
    (evaluation,) = api.get("/api/v1/evaluations",
                            params={"model": "models/proj-1/base@1"}).json()["items"]  # fmt: skip
    assert evaluation["job"] == job_id and evaluation["task"] == "tiny-arithmetic"
    assert evaluation["samples"] == len(qa) and "accuracy" in evaluation["metrics"]
    assert evaluation["log"] == "datasets/proj-1/base-evals@1"
    # Anyone holding the log recomputes the root the record holds.
    log = "/api/v1/artifacts/datasets/proj-1/base-evals/versions/1/files/samples.jsonl"
    leaves = [json.loads(line) for line in api.get(log).text.splitlines()]
    assert sample_root_of(leaves) == evaluation["sample_root"]
    published = {"type": "workloads:evaluation:published"}
    entries = api.get("/api/v1/record/entries", params=published).json()["items"]
    assert entries[-1]["entry"]["data"]["sample_root"] == evaluation["sample_root"]
    # The scores show on the model's page and on the task's leaderboard.
    assert "tiny-arithmetic" in api.get("/artifacts/models/proj-1/base/versions/1").text
    board = api.get("/leaderboards/tiny-arithmetic").text
    assert "models/proj-1/base@1" in board
    lineage = api.get("/api/v1/artifacts/datasets/proj-1/base-evals/versions/1/lineage").json()
    assert {"from": "datasets/proj-1/base-evals@1", "to": "models/proj-1/base@1",
            "relation": "evaluates", "job": str(job_id)} in lineage["edges"]  # fmt: skip


SLOW_TOML = """
# Steps slow enough to cancel the job in the middle of its run.
sequence_length = 128
batch_size = 16
max_steps = 150
checkpoint_every = 5
log_every = 5

[model]
architecture = "gpt2"
size = { n_layer = 2, n_head = 2, n_embd = 64 }

[tokenizer]
vocab_size = 300
"""


@pytest.mark.slow
def test_a_cancelled_training_keeps_its_checkpoint_and_a_resubmission_resumes_from_it(
    demo, capsys, monkeypatch, tmp_path
):
    as_pi(monkeypatch, demo)
    corpus(capsys, tmp_path)
    config = tmp_path / "slow.toml"
    config.write_text(SLOW_TOML)
    code, out, err = run(capsys, "train", "-p", "proj-1", "--config", str(config), "--dataset",
                         "proj-1/stories", "--out", "resumed", "--time", "10")  # fmt: skip
    assert code == 0, err
    first = int(re.search(r"admitted as job (\d+)", out).group(1))
    api = http_client(base_url=demo.url, timeout=30,
                       headers={"Authorization": f"Bearer {demo.pi_token}"})  # fmt: skip
    deadline = time.monotonic() + 240
    while not api.get(f"/api/v1/jobs/{first}/metrics").json()["points"]:
        assert time.monotonic() < deadline, api.get(f"/api/v1/jobs/{first}").json()
        time.sleep(0.2)
    code, _, err = run(capsys, "job", "cancel", str(first))
    assert code == 0, err
    while (cancelled := api.get(f"/api/v1/jobs/{first}").json())["state"] != "cancelled":
        assert time.monotonic() < deadline and cancelled["state"] not in ("succeeded", "failed")
        time.sleep(0.2)
    # Cancelled mid-run: its checkpoint stays in its folder; it is charged for what it ran
    # (once: tests/compute/test_jobs_api.py holds the ledger to one settlement a job).
    work = demo.served.settings.jobs_path / str(first) / "work" / "checkpoints"
    stopped_at = int((work / "latest").read_text().strip().rsplit("-", 1)[1])
    assert 0 < stopped_at < 150
    assert Decimal(cancelled["charged_hours"]) > 0

    code, out, err = run(capsys, "job", "resubmit", str(first), "--watch")
    assert code == 0, out + err
    assert f"resuming from step-{stopped_at:08d}: step {stopped_at} of 150" in out
    version = api.get("/api/v1/artifacts/models/proj-1/resumed/versions/1").json()
    assert f"| resumed from step | {stopped_at} |" in version["card"]["body"]


@pytest.mark.slow
def test_a_job_with_two_accelerators_trains_in_two_processes(demo, capsys, monkeypatch, tmp_path):
    as_pi(monkeypatch, demo)
    corpus(capsys, tmp_path)
    config = tmp_path / "tiny.toml"
    config.write_text(TRAIN_TOML)
    code, out, err = run(capsys, "train", "-p", "proj-1", "--config", str(config), "-n", "2",
                         "--dataset", "proj-1/stories", "--out", "twice", "--watch")  # fmt: skip
    assert code == 0, out + err
    assert "running the train runtime in 2 process(es)" in out
    api = http_client(base_url=demo.url, timeout=30)
    card = api.get("/api/v1/artifacts/models/proj-1/twice/versions/1").json()["card"]["body"]
    assert "| processes | 2 |" in card
