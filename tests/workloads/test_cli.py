"""`commonlab train` end to end on a served demo facility and its local executor: the PI
publishes a text dataset, submits a training workload from the CLI and watches it; inside the
job, `commonlab workload run` pulls the dataset, trains a tiny GPT-2 and publishes it with a
generated card, stamped weights and its lineage down to the dataset version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import run
from tests.journeys.conftest import Demo

TRAIN_TOML = """
# A GPT-2 small enough to train in seconds on a laptop's CPU.
max_steps = 6
checkpoint_every = 3
log_every = 1
sequence_length = 16
batch_size = 4

[model]
architecture = "gpt2"
size = { n_layer = 1, n_head = 2, n_embd = 16 }

[tokenizer]
vocab_size = 300
"""

LINES = [
    f"{who} {verb} the {thing} in the morning."
    for who in ("Amina", "Baraka", "Chausiku", "Dalila")
    for verb in ("reads", "writes", "sings", "finds")
    for thing in ("book", "song", "letter", "river")
]


def as_pi(monkeypatch, demo: Demo) -> None:
    monkeypatch.setenv("COMMONLAB_URL", demo.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", demo.pi_token)


def corpus(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"text": line, "source": "made up", "license": "CC0-1.0"}) + "\n"
                for line in LINES)
    )  # fmt: skip
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

    api = httpx.Client(base_url=demo.url, timeout=30)
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
