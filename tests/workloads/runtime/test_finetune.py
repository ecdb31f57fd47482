"""Fine-tuning inside a job: what LoRA (adapter and merged) and full fine-tuning leave in
`out/`, that chat data is learnt on the assistant's tokens only, and that a dataset with
neither messages nor text is refused with the columns it has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from commonlab.errors import InvalidInput
from commonlab.workloads.config import FinetuneConfig
from commonlab.workloads.runtime.finetune import (
    CHAT_TEMPLATE,
    IGNORE,
    encode_chat,
    ensure_chat_template,
    finetune,
)
from commonlab.workloads.runtime.paths import Paths
from tests.workloads.runtime.base_model import base_model_fixture  # noqa: F401 (base_model)

NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


def conversations(count: int) -> list[dict]:
    """Small sums asked and answered, always in the same words: easy to learn quickly."""
    rows = []
    for i in range(count):
        a, b = i % 6, (i * 5) % 7
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You add numbers."},
                    {"role": "user", "content": f"What is {NUMBERS[a]} plus {NUMBERS[b]}?"},
                    {"role": "assistant", "content": f"It is {NUMBERS[a + b]}."},
                ]
            }
        )
    return rows


def write_jsonl(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return folder


def paths_for(tmp_path: Path, data: Path, model: Path) -> Paths:
    return Paths(
        data=data,
        model=model,
        out=tmp_path / "out",
        scratch=tmp_path / "scratch",
        metrics=tmp_path / "metrics.jsonl",
    )


def config(**overrides: object) -> FinetuneConfig:
    # Large steps on a tiny model: the weights move visibly within a few steps.
    base = {
        "max_steps": 6,
        "batch_size": 4,
        "sequence_length": 48,
        "device": "cpu",
        "checkpoint_every": 1000,
        "log_every": 1,
        "optimizer": {"learning_rate": 1e-2, "schedule": "constant"},
    }
    return FinetuneConfig.model_validate({**base, **overrides})


def logits(model: torch.nn.Module, tokenizer) -> torch.Tensor:
    ids = tokenizer("What is two plus three?", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.fixture
def chat_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data", conversations(50))


def test_lora_adapter_loads_onto_the_base_and_changes_it(tmp_path, chat_data, base_model):
    from peft import PeftModel

    paths = paths_for(tmp_path, chat_data, base_model)
    results = finetune(config(), paths)

    assert (paths.out / "adapter_config.json").exists()
    assert (paths.out / "adapter_model.safetensors").exists()
    assert not (paths.out / "model.safetensors").exists()  # an adapter, not a copy
    assert results["method"] == "lora" and results["steps"] == 6
    assert 0 < results["trainable_parameters"] < results["parameters"]
    assert results["base_model"] == str(base_model)
    assert json.loads((paths.out / "results.json").read_text()) == results

    tokenizer = AutoTokenizer.from_pretrained(paths.out)
    assert tokenizer.chat_template == CHAT_TEMPLATE  # the saved tokenizer prompts as trained
    base = AutoModelForCausalLM.from_pretrained(base_model)
    before = logits(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, paths.out)
    assert not torch.allclose(logits(tuned, tokenizer), before)


def test_lora_merged_is_a_full_model(tmp_path, chat_data, base_model):
    paths = paths_for(tmp_path, chat_data, base_model)
    finetune(config(merge=True), paths)

    assert not (paths.out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(paths.out)
    base = AutoModelForCausalLM.from_pretrained(base_model)
    tokenizer = AutoTokenizer.from_pretrained(paths.out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert not torch.allclose(logits(merged, tokenizer), logits(base, tokenizer))


def test_full_finetuning_changes_every_weight_it_trains(tmp_path, chat_data, base_model):
    paths = paths_for(tmp_path, chat_data, base_model)
    results = finetune(config(method="full"), paths)

    assert results["trainable_parameters"] == results["parameters"]
    base = dict(AutoModelForCausalLM.from_pretrained(base_model).named_parameters())
    tuned = dict(AutoModelForCausalLM.from_pretrained(paths.out).named_parameters())
    # Weights of the blocks and the embedding all moved, not only a few.
    changed = [n for n, p in tuned.items() if not torch.allclose(p, base[n])]
    assert "transformer.wte.weight" in changed
    assert any(".h.0." in n for n in changed) and any(".h.1." in n for n in changed)


def test_a_lora_run_resumed_from_its_checkpoint_follows_the_uninterrupted_one(
    tmp_path, chat_data, base_model
):
    whole = finetune(config(max_steps=4), paths_for(tmp_path / "whole", chat_data, base_model))
    halves = paths_for(tmp_path / "halves", chat_data, base_model)
    finetune(config(max_steps=2), halves)
    resumed = finetune(config(max_steps=4), halves)

    assert resumed["resumed_from_step"] == 2
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-6)


def test_chat_labels_are_the_assistants_tokens_only(base_model):
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    ensure_chat_template(tokenizer)
    messages = [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "What is one plus two?"},
        {"role": "assistant", "content": "It is three."},
        {"role": "user", "content": "And two plus two?"},
        {"role": "assistant", "content": "It is four."},
    ]
    ids, labels = encode_chat(tokenizer, messages, max_length=200)

    learnt = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != IGNORE])
    eos = tokenizer.eos_token
    assert learnt == f"It is three.{eos}\nIt is four.{eos}\n"
    # Every label is its own token or ignored: nothing else leaks in.
    assert all(label in (IGNORE, i) for i, label in zip(ids, labels, strict=True))
    # The prompt (system, user, the assistant marker) is all ignored.
    prompt_length = len(
        tokenizer(
            tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        ).input_ids
    )
    assert set(labels[:prompt_length]) == {IGNORE}


def test_the_loss_goes_down_on_chat(tmp_path, chat_data, base_model):
    paths = paths_for(tmp_path, chat_data, base_model)
    results = finetune(config(method="full", max_steps=20), paths)

    losses = results["losses"]
    assert len(losses) == 20
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4


def test_text_format_trains_on_plain_text(tmp_path, base_model):
    rows = [{"text": f"{NUMBERS[i % 13]} and {NUMBERS[(i + 1) % 13]}"} for i in range(40)]
    data = write_jsonl(tmp_path / "data", rows)
    results = finetune(config(max_steps=3), paths_for(tmp_path, data, base_model))
    assert results["steps"] == 3 and results["tokens"] > 0


def test_a_dataset_without_messages_or_text_names_its_columns(tmp_path, base_model):
    data = write_jsonl(tmp_path / "data", [{"prompt": "hi", "answer": "yo"}] * 4)
    with pytest.raises(InvalidInput) as raised:
        finetune(config(), paths_for(tmp_path, data, base_model))
    message = raised.value.message
    assert "messages" in message and "text" in message
    assert "prompt" in message and "answer" in message


def test_chat_format_asked_of_text_data_names_the_missing_column(tmp_path, base_model):
    data = write_jsonl(tmp_path / "data", [{"text": "hello"}] * 4)
    with pytest.raises(InvalidInput, match="messages"):
        finetune(config(format="chat"), paths_for(tmp_path, data, base_model))


def test_a_bad_conversation_names_its_record(tmp_path, base_model):
    rows = [*conversations(2), {"messages": [{"role": "robot", "content": "beep"}]}]
    data = write_jsonl(tmp_path / "data", rows)
    with pytest.raises(InvalidInput, match=r"record 3.*robot"):
        finetune(config(), paths_for(tmp_path, data, base_model))


def test_without_a_base_model_it_says_so(tmp_path, chat_data):
    paths = Paths(chat_data, None, tmp_path / "out", tmp_path / "s", tmp_path / "m.jsonl")
    with pytest.raises(InvalidInput, match="base model"):
        finetune(config(), paths)
