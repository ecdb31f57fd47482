"""Journey 3, a model and its data, open to the bone, with the facility's own workloads: the
PI publishes a dataset whose every record names its source and licence (speech clips with
transcripts, or text), trains a model on it with `commonlab train` on the local executor,
and the model version that job publishes shows its generated card, its signature status and
its lineage down to the dataset version and the sources of its records. A researcher
elsewhere loads it with `transformers` pointed at the facility, pulls the dataset with
`datasets`, and checks a download against the signed manifest with `commonlab verify`.

`tests/journeys/test_journeys_on_slurm.py` walks the same path on Slurm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.test_journey_2_a_researcher_gets_compute import as_person, text_of
from tests.journeys.workloads import (
    SENTENCES,
    SPEECH_TOML,
    TEXT_TOML,
    speech_dataset,
    text_dataset,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Modality:
    name: str
    dataset: str
    model: str
    config: str


TEXT = Modality("text", "kiswahili-stories", "stories-gpt2", TEXT_TOML)
SPEECH = Modality("speech", "kiswahili-speech", "kiswahili-asr", SPEECH_TOML)


HUB_SCRIPT = r"""
import io, json, sys
import datasets, soundfile, torch
from huggingface_hub import snapshot_download

modality, model_id, dataset_id, target = sys.argv[1:5]
snapshot_download(model_id, local_dir=target)
rows = datasets.load_dataset(dataset_id, data_files={"train": "data/*"}, split="train")
first = rows[0]
if modality == "speech":
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor
    model = Wav2Vec2ForCTC.from_pretrained(model_id)
    processor = Wav2Vec2Processor.from_pretrained(model_id)
    audio, rate = soundfile.read(io.BytesIO(first["audio"]), dtype="float32")
    audio = torch.nn.functional.interpolate(
        torch.tensor(audio)[None, None], size=int(len(audio) * 16000 / rate), mode="linear"
    )[0, 0].numpy()
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model(inputs.input_values).logits.argmax(-1)
    said = processor.batch_decode(ids)[0]
else:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(model_id)
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    ids = tokenizer("Amina reads", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    said = tokenizer.decode(out[0])
print(json.dumps({"said": said, "rows": len(rows), "columns": sorted(rows.column_names),
                  "first_source": first["source"]}))
"""


def walk_journey_3(demo, capsys, monkeypatch, tmp_path: Path, modality: Modality) -> None:
    """The journey on `demo`, whatever executor it runs its jobs on."""
    as_person(monkeypatch, demo, demo.pi_token)
    folder = tmp_path / modality.dataset
    (speech_dataset if modality is SPEECH else text_dataset)(folder)
    code, _, err = run(capsys, "dataset", "push", str(folder), "--repo",
                       f"proj-1/{modality.dataset}", "--license", "CC0-1.0",
                       "-m", f"{modality.name} records with their sources")  # fmt: skip
    assert code == 0, err
    config = tmp_path / f"{modality.name}.toml"
    config.write_text(modality.config)
    code, out, err = run(capsys, "train", "-p", "proj-1", "--config", str(config),
                         "--dataset", f"proj-1/{modality.dataset}", "--out", modality.model,
                         "--time", "15", "--watch")  # fmt: skip
    assert code == 0, out + err
    job = re.search(r"admitted as job (\d+)", out).group(1)
    assert "succeeded" in out and "loss" in out

    # The model's page: its generated card, its signature, its lineage to the data's sources.
    api = http_client(base_url=demo.url, timeout=60)
    ref = f"models/proj-1/{modality.model}"
    version = api.get(f"/api/v1/artifacts/{ref}/versions/1").json()
    assert version["job"] == job and version["card"]["meta"]["datasets"] == [
        f"datasets/proj-1/{modality.dataset}@1"
    ]
    page = api.get(f"/artifacts/{ref}/versions/1").text
    words = text_of(page)
    assert f"Made by the train workload of job {job}" in words
    assert "✓ Signed by the facility" in words
    assert f"datasets/proj-1/{modality.dataset}@1" in words
    sources = "espeak-ng voice en" if modality is SPEECH else "storyteller-0"
    assert re.search(rf"Its records come from [^.]*{sources}", words), words[-2000:]

    # A researcher elsewhere, with the Hub's own libraries pointed at the facility.
    env = {**os.environ, "HF_ENDPOINT": demo.url, "HF_HUB_OFFLINE": "0",
           "HF_DATASETS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""}  # fmt: skip
    env.pop("COMMONLAB_TOKEN", None)
    snapshot = tmp_path / "snapshot"
    result = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, modality.name, f"proj-1/{modality.model}",
         f"proj-1/{modality.dataset}", str(snapshot)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(answer["said"], str)
    assert answer["rows"] == (12 if modality is SPEECH else len(SENTENCES))
    assert {"license", "source", "text"} <= set(answer["columns"])

    # The download checks out against the signed manifest; a changed byte does not.
    key = api.get("/api/v1/record/key").json()["verifier_key"]
    code, out, err = run(capsys, "verify", f"{ref}@1", str(snapshot), "--key", key)
    assert code == 0, out + err
    weights = snapshot / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    code, _, err = run(capsys, "verify", f"{ref}@1", str(snapshot), "--key", key)
    assert code == 1 and "does not match the signed manifest" in err


@pytest.mark.parametrize("modality", [TEXT, SPEECH], ids=lambda m: m.name)
def test_journey_3_a_model_and_its_data(demo, capsys, monkeypatch, tmp_path, modality):
    walk_journey_3(demo, capsys, monkeypatch, tmp_path, modality)
