"""runtime/lm.py: a tiny GPT-2 and a tiny Llama learn from local text, and what they leave
in the output folder loads with transformers' Auto classes and generates; a model size
with a key the architecture does not know is refused, naming it and the allowed ones."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from commonlab.compute.rules import CHECKPOINT_METRIC
from commonlab.errors import InvalidInput
from commonlab.workloads.config import TrainConfig
from commonlab.workloads.runtime.lm import packed_sequences, train_causal_lm
from commonlab.workloads.runtime.paths import Paths
from commonlab.workloads.runtime.tokenizer import learn_tokenizer
from tests.workloads.runtime.text_data import sentences, text_records, write_jsonl

TINY = {
    "gpt2": {"n_layer": 2, "n_embd": 32, "n_head": 2},
    "llama": {
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
}


def tiny_config(architecture: str = "gpt2", **overrides: object) -> TrainConfig:
    settings: dict = {
        "task": "causal_lm",
        "model": {"architecture": architecture, "size": TINY[architecture]},
        "tokenizer": {"vocab_size": 300, "min_frequency": 2},
        "sequence_length": 32,
        "batch_size": 8,
        "max_steps": 20,
        "checkpoint_every": 10,
        "log_every": 5,
        "device": "cpu",
        "precision": "fp32",
        "optimizer": {"learning_rate": 1e-2, "warmup_steps": 2, "schedule": "cosine"},
    }
    settings.update(overrides)
    return TrainConfig.model_validate(settings)


def job_paths(root: Path, data: Path, model: Path | None = None) -> Paths:
    return Paths(data, model, root / "out", root / "scratch", root / "metrics.jsonl")


@pytest.fixture
def text_folder(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data", text_records(200))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_a_tiny_model_learns_and_its_output_loads_and_generates(
    tmp_path: Path, text_folder: Path, architecture: str
) -> None:
    torch.use_deterministic_algorithms(True)
    paths = job_paths(tmp_path / "job", text_folder)
    results = train_causal_lm(tiny_config(architecture), paths)

    losses = results["losses"]
    assert results["steps"] == 20 and len(losses) == 20
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    assert results["tokens"] == 20 * 8 * 32
    assert results["resumed_from_step"] == 0
    assert (results["device"], results["precision"], results["processes"]) == ("cpu", "fp32", 1)
    assert json.loads((paths.out / "results.json").read_text()) == results

    lines = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    logged = [entry for entry in lines if CHECKPOINT_METRIC not in entry]
    assert [entry["step"] for entry in logged] == [5, 10, 15, 20]
    assert {"loss", "learning_rate", "tokens_per_second", "grad_norm"} <= set(logged[0])
    saved = [entry[CHECKPOINT_METRIC] for entry in lines if CHECKPOINT_METRIC in entry]
    assert saved == [10, 20]  # every checkpoint_every steps, and at the end

    assert (paths.out / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(paths.out)
    tokenizer = AutoTokenizer.from_pretrained(paths.out)
    assert model.config.model_type == architecture
    assert sum(p.numel() for p in model.parameters()) == results["parameters"]
    prompt = tokenizer("the cat", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]
    assert tokenizer.decode(generated[0]).startswith("the cat")


def test_an_unknown_size_key_is_named_with_the_allowed_ones(
    tmp_path: Path, text_folder: Path
) -> None:
    config = tiny_config(model={"architecture": "gpt2", "size": {"n_layer": 1, "n_layers": 2}})
    with pytest.raises(InvalidInput) as caught:
        train_causal_lm(config, job_paths(tmp_path, text_folder))
    message = caught.value.message
    assert "n_layers" in message
    assert "n_layer, " in message and "n_embd" in message and "n_positions" in message


def test_size_keys_the_tokenizer_decides_or_too_short_a_context_are_refused(
    tmp_path: Path, text_folder: Path
) -> None:
    sized = tiny_config(model={"architecture": "gpt2", "size": {"vocab_size": 100}})
    with pytest.raises(InvalidInput, match=r"tokenizer\.vocab_size"):
        train_causal_lm(sized, job_paths(tmp_path / "a", text_folder))
    short = tiny_config(model={"architecture": "llama", "size": {"max_position_embeddings": 16}})
    with pytest.raises(InvalidInput, match="shorter than sequence_length 32"):
        train_causal_lm(short, job_paths(tmp_path / "b", text_folder))


def test_a_tokenizer_in_the_model_folder_is_used_and_the_learned_one_is_kept(
    tmp_path: Path, text_folder: Path
) -> None:
    given = learn_tokenizer(iter(sentences(50, seed=3)), tiny_config().tokenizer)
    given.save_pretrained(tmp_path / "model")
    config = tiny_config(max_steps=2)
    with_model = job_paths(tmp_path / "with", text_folder, tmp_path / "model")
    train_causal_lm(config, with_model)
    assert not (with_model.scratch / "tokenizer").exists()
    assert AutoTokenizer.from_pretrained(with_model.out).get_vocab() == given.get_vocab()

    learned = job_paths(tmp_path / "learned", text_folder)
    train_causal_lm(config, learned)
    kept = AutoTokenizer.from_pretrained(learned.scratch / "tokenizer")
    assert AutoTokenizer.from_pretrained(learned.out).get_vocab() == kept.get_vocab()


def test_documents_are_packed_end_to_end_with_an_end_of_text_between(
    text_folder: Path,
) -> None:
    config = tiny_config()
    tokenizer = learn_tokenizer(iter(sentences(200)), config.tokenizer)
    windows = list(packed_sequences(text_folder, config.data, tokenizer, 16))
    assert all(len(window) == 17 for window in windows)
    # Consecutive windows share one token: every token is a target exactly once.
    assert all(a[-1] == b[0] for a, b in itertools.pairwise(windows))
    stream = [t for w in windows[:1] for t in w] + [t for w in windows[1:] for t in w[1:]]
    expected: list[int] = []
    for text in sentences(200):
        expected += tokenizer(text, add_special_tokens=False)["input_ids"]
        expected.append(tokenizer.eos_token_id)
    assert stream == expected[: len(stream)]
    assert len(expected) - len(stream) < 16
