"""Train a causal language model from scratch on a dataset's text: GPT-2 or a Llama-style
model sized by `model.size`, a tokenizer from the model folder or learned from the data,
documents packed end to end into sequences, and the shared training loop.

The output folder holds the model in the Hugging Face layout (config.json,
model.safetensors, generation_config.json, the tokenizer's files) and results.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec, TrainConfig
from commonlab.workloads.runtime import device
from commonlab.workloads.runtime.data import iter_records
from commonlab.workloads.runtime.loop import repeat_epochs, train
from commonlab.workloads.runtime.paths import Paths
from commonlab.workloads.runtime.tokenizer import tokenizer_for

__all__ = [
    "ARCHITECTURES",
    "CausalLMTask",
    "allowed_size_keys",
    "build_model",
    "model_config",
    "packed_sequences",
    "train_causal_lm",
]

ARCHITECTURES: dict[str, tuple[type[PretrainedConfig], type[PreTrainedModel], str]] = {
    # architecture: (configuration class, model class, its context-length key)
    "gpt2": (GPT2Config, GPT2LMHeadModel, "n_positions"),
    "llama": (LlamaConfig, LlamaForCausalLM, "max_position_embeddings"),
}
# Keys the tokenizer decides, not the person sizing the model.
_FROM_TOKENIZER = {"vocab_size", "bos_token_id", "eos_token_id", "pad_token_id"}
_TOKENIZE_CHUNK = 256  # records tokenized together (the fast tokenizer batches them)


def allowed_size_keys(architecture: str) -> list[str]:
    """The keyword arguments `model.size` may set: the configuration class's own fields
    (not those every transformers configuration has), less what the tokenizer decides."""
    config_class = ARCHITECTURES[architecture][0]
    generic = set(PretrainedConfig().to_dict())
    return sorted(set(config_class().to_dict()) - generic - _FROM_TOKENIZER)


def model_config(
    architecture: str,
    size: Mapping[str, object],
    *,
    vocab_size: int,
    sequence_length: int,
    special: Mapping[str, int | None] | None = None,
) -> PretrainedConfig:
    """The transformers configuration `model.size` describes, refused by name when it sets
    what the tokenizer decides, a key the architecture does not know, or a context shorter
    than the sequences. `special` holds the tokenizer's bos/eos/pad ids."""
    if architecture not in ARCHITECTURES:
        raise InvalidInput(
            f"model.architecture {architecture!r} is not a causal language model: "
            f"use one of {', '.join(ARCHITECTURES)}"
        )
    config_class, _, context_key = ARCHITECTURES[architecture]
    decided = sorted(set(size) & _FROM_TOKENIZER)
    if decided:
        raise InvalidInput(
            f"model.size may not set {', '.join(decided)}: the tokenizer decides them "
            "(set tokenizer.vocab_size to size the vocabulary)"
        )
    allowed = allowed_size_keys(architecture)
    unknown = sorted(set(size) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"model.size has keys {architecture} does not know: {', '.join(unknown)} "
            f"(it knows: {', '.join(allowed)})"
        )
    context = int(size.get(context_key, sequence_length))  # type: ignore[call-overload]
    if context < sequence_length:
        raise InvalidInput(
            f"model.size.{context_key} {context} is shorter than sequence_length "
            f"{sequence_length}: raise it or shorten the sequences"
        )
    try:
        return config_class(
            **{**size, context_key: context}, vocab_size=vocab_size, **dict(special or {})
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"model.size does not make a {architecture} model: {exc}") from None


def build_model(
    architecture: str,
    size: Mapping[str, object],
    *,
    tokenizer: PreTrainedTokenizerBase,
    sequence_length: int,
) -> PreTrainedModel:
    """A freshly initialised model (seed torch first for a reproducible one)."""
    config = model_config(
        architecture,
        size,
        vocab_size=len(tokenizer),
        sequence_length=sequence_length,
        special={
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
    )
    try:
        return ARCHITECTURES[architecture][1](config)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"model.size does not make a {architecture} model: {exc}") from None


def packed_sequences(
    root: Path,
    spec: DataSpec,
    tokenizer: PreTrainedTokenizerBase,
    length: int,
) -> Iterator[list[int]]:
    """One pass over the dataset's text as windows of `length + 1` tokens (inputs and the
    next token of each) that overlap by one token, so every token is predicted once;
    documents are joined with the end-of-text token. The tail shorter than a window is
    dropped."""
    column = spec.text_column
    separator = [tokenizer.eos_token_id]
    records = iter_records(root, spec, [column])
    buffer: list[int] = []
    while chunk := [str(r[column]) for r in islice(records, _TOKENIZE_CHUNK)]:
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            buffer.extend(ids)
            buffer.extend(separator)
        start = 0
        while len(buffer) - start >= length + 1:
            yield buffer[start : start + length + 1]
            start += length
        del buffer[:start]


class CausalLMTask:
    """Next-token prediction over packed sequences, as the training loop takes it."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        data: Path,
        spec: DataSpec,
        sequence_length: int,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.data = data
        self.spec = spec
        self.sequence_length = sequence_length

    def examples(self, start: int) -> Iterator[list[int]]:
        return repeat_epochs(
            lambda: packed_sequences(self.data, self.spec, self.tokenizer, self.sequence_length),
            start=start,
            empty=(
                f"the dataset's text is shorter than one sequence of {self.sequence_length} "
                "tokens: add text or lower sequence_length"
            ),
        )

    def collate(self, examples: list[list[int]]) -> dict[str, torch.Tensor]:
        windows = torch.tensor(examples, dtype=torch.long)
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, int]:
        logits = model(input_ids=batch["input_ids"]).logits
        labels = batch["labels"]
        # The cross-entropy in fp32 even under autocast: a sum over many tokens.
        summed = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
        )
        return summed, labels.numel()


def train_causal_lm(config: TrainConfig, paths: Paths) -> dict:
    """Train, save the model and tokenizer to `paths.out` and return the training results
    (also written to `paths.out/results.json`)."""
    if config.model.architecture not in ARCHITECTURES:
        raise InvalidInput(
            f"task causal_lm trains {' or '.join(ARCHITECTURES)}, not {config.model.architecture!r}"
        )
    runtime = device.start(config.device, config.precision)
    try:
        paths.scratch.mkdir(parents=True, exist_ok=True)
        tokenizer = tokenizer_for(config, paths, runtime)
        # The same seed in every process: the same initial weights everywhere.
        torch.manual_seed(config.seed)
        model = build_model(
            config.model.architecture,
            config.model.size,
            tokenizer=tokenizer,
            sequence_length=config.sequence_length,
        )
        task = CausalLMTask(
            model,
            tokenizer,
            data=paths.data,
            spec=config.data,
            sequence_length=config.sequence_length,
        )
        results = train(task, config, paths=paths, runtime=runtime)
        if runtime.is_main:
            _save(model, tokenizer, paths.out, results)
        device.barrier(runtime)
        return results
    finally:
        device.stop(runtime)


def _save(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path, results: dict
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
