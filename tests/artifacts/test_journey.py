"""Journey 3 on a live facility: a dataset and a tiny GPT-2 trained from it are pushed with
the CLI, signed, traced through lineage, pulled and verified, and read back by the real
`huggingface_hub`, `transformers` and `datasets` with HF_ENDPOINT pointing at the facility."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commonlab.cli.main import main
from tests.helpers import http_client

pytest.importorskip("transformers")
pytest.importorskip("datasets")

LINES = [
    "habari ya asubuhi, karibu kwenye redio",
    "the facility publishes open models with their data",
    "mvua inanyesha leo jioni katika mji wa Nairobi",
    "every version is signed and on the public record",
] * 5


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"commonlab {' '.join(args)} exited {exc.code}"


def make_dataset(root: Path) -> Path:
    """Text records (JSONL) and image and audio records (a WebDataset shard), each naming its
    source and licence, except one that leaves them to the version."""
    from tests.artifacts import media

    folder = root / "swahili-text"
    (folder / "data").mkdir(parents=True)
    with (folder / "data" / "train.jsonl").open("w") as fh:
        for i, line in enumerate(LINES):
            fh.write(json.dumps({"text": line, "source": f"radio-{i % 3}", "license": "CC-BY-4.0"}))
            fh.write("\n")
    (folder / "shards").mkdir()
    (folder / "shards" / "media-000000.tar").write_bytes(
        media.shard(
            [
                {"__key__": "market", "png": media.png(), "txt": "soko la Kariakoo",
                 "json": {"source": "https://photos.example/market", "license": "CC0-1.0"}},
                {"__key__": "greeting", "wav": media.wav(), "txt": "habari ya asubuhi",
                 "json": {"source": "radio-0"}},
            ]
        )
    )  # fmt: skip
    return folder


def make_model(root: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(LINES))
    bpe = ByteLevelBPETokenizer()
    bpe.train([str(corpus)], vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer)
    tokenizer.add_special_tokens({"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"})
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    folder = root / "tiny-gpt2"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n"
        "---\n# tiny-gpt2\n\nA one-layer GPT-2 trained on speech-lab/swahili-text.\n"
    )
    return folder


HUB_SCRIPT = r"""
import json, sys
from huggingface_hub import snapshot_download, HfApi
from transformers import AutoModelForCausalLM, AutoTokenizer
import datasets, torch

model_id, dataset_id, target = sys.argv[1], sys.argv[2], sys.argv[3]
info = HfApi().model_info(model_id)
path = snapshot_download(model_id, local_dir=target)
cached = snapshot_download(model_id)  # the cache's snapshot: links into its blob store
model = AutoModelForCausalLM.from_pretrained(model_id)
tok = AutoTokenizer.from_pretrained(model_id)
ids = tok("habari ya asubuhi", return_tensors="pt")
with torch.no_grad():
    logits = model(**ids).logits
ds = datasets.load_dataset(dataset_id, data_files={"train": "data/train.jsonl"}, split="train")
print(json.dumps({
    "cached": cached,
    "sha": info.sha,
    "siblings": sorted(s.rfilename for s in info.siblings),
    "logits_sum": float(logits.sum()),
    "rows": len(ds),
    "first": ds[0]["text"],
    "columns": sorted(ds.column_names),
}))
"""


def test_journey_push_sign_trace_and_load_with_the_hub_libraries(live, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    dataset_dir = make_dataset(tmp_path)
    model_dir = make_model(tmp_path)

    cli("dataset", "push", str(dataset_dir), "--repo", "speech-lab/swahili-text",
        "--license", "CC-BY-4.0", "--tag", "v1", "-m", "radio transcripts")  # fmt: skip
    cli("model", "push", str(model_dir), "--repo", "speech-lab/tiny-gpt2", "--tag", "v1",
        "--from", "trained_on:datasets/speech-lab/swahili-text@1", "--job", "job-1",
        "--stamp")  # fmt: skip

    api = http_client(base_url=live.url)
    version = api.get("/api/v1/artifacts/models/speech-lab/tiny-gpt2/versions/v1").json()
    assert version["licenses"] == ["Apache-2.0"]
    weights = next(f for f in version["files"] if f["path"] == "model.safetensors")
    assert weights["meta"]["metadata"] == {
        "format": "pt", "commonlab.repository": "models/speech-lab/tiny-gpt2",
        "commonlab.version": "1", "commonlab.job": "job-1",
    }  # fmt: skip
    lineage = api.get("/api/v1/artifacts/models/speech-lab/tiny-gpt2/versions/1/lineage").json()
    assert "datasets/speech-lab/swahili-text@1" in {n["ref"] for n in lineage["nodes"]}

    # The dataset's records: text, an image and audio, each with its source and licence.
    data = "/api/v1/artifacts/datasets/speech-lab/swahili-text/versions/1"
    text = api.get(f"{data}/records", params={"file": "data/train.jsonl", "limit": 2}).json()
    assert [(r["source"], r["license"]) for r in text["records"]] == [
        ("radio-0", "CC-BY-4.0"), ("radio-1", "CC-BY-4.0")
    ]  # fmt: skip
    shard = {"file": "shards/media-000000.tar"}
    samples = api.get(f"{data}/records", params=shard).json()["records"]
    assert [r["kinds"] for r in samples] == [["image"], ["audio"]]
    assert (samples[0]["license"], samples[0]["license_from"]) == ("CC0-1.0", "record")
    assert (samples[1]["license"], samples[1]["license_from"]) == ("CC-BY-4.0", "version")
    image = api.get(f"{data}/records/0/media", params={**shard, "member": "png"})
    assert image.headers["content-type"] == "image/png"
    assert api.get("/artifacts/datasets/speech-lab/swahili-text/versions/1/records/1",
                   params=shard).text.count("<audio") == 1  # fmt: skip

    # Pull and verify offline; a tampered copy fails.
    pulled = tmp_path / "pulled"
    cli("model", "pull", "speech-lab/tiny-gpt2@1", str(pulled))
    key = api.get("/api/v1/record/key").json()["verifier_key"]
    cli("verify", "models/speech-lab/tiny-gpt2@1", str(pulled), "--key", key)
    (pulled / "config.json").write_text("{}")
    with pytest.raises(SystemExit) as failed:
        main(["verify", "models/speech-lab/tiny-gpt2@1", str(pulled), "--key", key])
    assert failed.value.code == 1

    # The real Hub clients, in a clean process pointed at the facility.
    env = {
        **os.environ,
        "HF_ENDPOINT": live.url,
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_TOKEN": "",
    }
    env.pop("COMMONLAB_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT, "speech-lab/tiny-gpt2", "speech-lab/swahili-text",
         str(tmp_path / "snapshot")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["sha"] == version["commit"]
    assert "model.safetensors" in answer["siblings"]
    original = AutoModelForCausalLM.from_pretrained(model_dir)
    tok_ids = __import__("transformers").AutoTokenizer.from_pretrained(model_dir)(
        "habari ya asubuhi", return_tensors="pt"
    )
    with torch.no_grad():
        expected = float(original(**tok_ids).logits.sum())
    assert answer["logits_sum"] == pytest.approx(expected, rel=1e-5)
    assert answer["rows"] == len(LINES) and answer["first"] == LINES[0]
    assert answer["columns"] == ["license", "source", "text"]

    # What the Hub clients downloaded verifies against the signed manifest, as it lies: the
    # cache's snapshot (symbolic links into its blobs) and a local_dir copy (with the client's
    # own .cache/huggingface bookkeeping beside the files).
    assert (tmp_path / "snapshot" / ".cache" / "huggingface").is_dir()
    for copy in (answer["cached"], str(tmp_path / "snapshot")):
        cli("verify", "models/speech-lab/tiny-gpt2@1", copy, "--key", key)
