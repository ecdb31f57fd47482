"""Fine-tuning a registered base model inside a job: LoRA (an adapter, or merged into the
weights) or full, on chat data (`{"messages": [...]}`, loss on the assistant's tokens only)
or plain text, trained through the shared loop and saved in the Hugging Face layout.

A base model whose tokenizer has no chat template gets `CHAT_TEMPLATE`, and the saved
tokenizer carries it, so the fine-tuned model is prompted the way it was trained.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec, FinetuneConfig
from commonlab.workloads.runtime import device
from commonlab.workloads.runtime.data import columns_of, iter_records
from commonlab.workloads.runtime.lm import CausalLMTask
from commonlab.workloads.runtime.loop import TrainingTask, repeat_epochs, train
from commonlab.workloads.runtime.paths import Paths

__all__ = [
    "CHAT_TEMPLATE",
    "IGNORE",
    "ROLES",
    "ChatTask",
    "choose_format",
    "encode_chat",
    "ensure_chat_template",
    "finetune",
]

ROLES = ("system", "user", "assistant")

# A turn is its role in a marker line, its content, then the end-of-sequence token, so a
# model trained on it stops after its answer. The markers are plain text, not new tokens:
# a LoRA run leaves the embeddings as they are, and new rows there would stay untrained.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

IGNORE = -100  # the label the loss skips


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give `tokenizer` `CHAT_TEMPLATE` when it has no template of its own."""
    if tokenizer.chat_template:
        return
    if tokenizer.eos_token is None:
        raise InvalidInput(
            "the base model's tokenizer has neither a chat template nor an end-of-sequence "
            'token: add a chat_template to its tokenizer_config.json, or use format = "text"'
        )
    tokenizer.chat_template = CHAT_TEMPLATE


def _checked_messages(value: object, record: int) -> list[dict[str, str]]:
    """The conversation of (1-based) record number `record`, or InvalidInput saying what is
    wrong with it."""
    where = f"record {record}"
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{where}: messages must be a non-empty list of {{role, content}}")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise InvalidInput(f"{where}: message {i} is not an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidInput(f"{where}: message {i} has role {role!r}; use one of {ROLES}")
        if not isinstance(content, str):
            raise InvalidInput(f"{where}: message {i} has no text content")
        messages.append({"role": role, "content": content})
    return messages


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], *, prompt: bool
) -> str:
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=prompt
    )


def _assistant_spans(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the assistant's turns in it.

    A turn's span runs from the end of the prompt for it (the conversation before it with
    the generation prompt) to the end of the conversation through it, so the end-of-turn
    marker is learnt too. Templates that render a prefix differently from the whole (some
    drop earlier reasoning, some cannot render an empty conversation) fall back to finding
    the assistant's text itself."""
    full = _render(tokenizer, messages, prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        through = _render(tokenizer, messages[: i + 1], prompt=False)
        consistent = full.startswith(through)
        span = None
        if i > 0 and consistent:
            before = _render(tokenizer, messages[:i], prompt=True)
            if through.startswith(before) and len(before) >= cursor:
                span = (len(before), len(through))
        if span is None:
            content = message["content"].strip()
            start = full.find(content, cursor)
            if start < 0:
                raise InvalidInput(
                    "the base model's chat template changes the assistant's messages, so "
                    'which tokens to learn cannot be found: fine-tune with format = "text"'
                )
            end = start + len(content)
            span = (start, max(end, len(through)) if consistent else end)
        spans.append(span)
        cursor = span[1]
    return full, spans


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]], *, max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation (at most `max_length`) and their labels: the
    id on the assistant's tokens, `IGNORE` on everything else."""
    text, spans = _assistant_spans(tokenizer, messages)
    # The template already wrote any special tokens it wants (a BOS, say); adding them
    # again would double them.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    labels = [IGNORE] * len(ids)
    for k, (start, _end) in enumerate(encoded["offset_mapping"][: len(ids)]):
        if any(lo <= start < hi for lo, hi in spans):
            labels[k] = ids[k]
    return ids, labels


def choose_format(config: FinetuneConfig, data: Path) -> str:
    """`chat` or `text`: as configured, or for `auto` chat when the dataset has the
    messages column, else text when it has the text column."""
    if config.format != "auto":
        return config.format
    spec = config.data
    present = columns_of(data, spec)
    if spec.messages_column in present:
        return "chat"
    if spec.text_column in present:
        return "text"
    raise InvalidInput(
        f"the dataset has neither a {spec.messages_column!r} column (chat) nor a "
        f"{spec.text_column!r} column (text) to fine-tune on "
        f"(it has: {', '.join(present) or 'nothing'}); set data.messages_column or "
        "data.text_column"
    )


class ChatTask:
    """Conversations, one to a row padded to the longest of its micro-batch, learnt on the
    assistant's tokens only, as the training loop takes them."""

    def __init__(
        self,
        model: torch.nn.Module,
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
        pad = tokenizer.pad_token_id
        # Padding is masked out of attention and loss; any id does, the end of text is one.
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    def _conversations(self) -> Iterator[list[dict[str, str]]]:
        column = self.spec.messages_column
        for number, record in enumerate(iter_records(self.data, self.spec, [column]), start=1):
            messages = _checked_messages(record[column], number)
            # A conversation with no assistant turn has nothing to learn.
            if any(m["role"] == "assistant" for m in messages):
                yield messages

    def examples(self, start: int) -> Iterator[list[dict[str, str]]]:
        return repeat_epochs(
            self._conversations,
            start=start,
            empty="the dataset has no conversation with an assistant message to learn from",
        )

    def collate(self, examples: list[list[dict[str, str]]]) -> dict[str, torch.Tensor]:
        encoded = [
            encode_chat(self.tokenizer, messages, max_length=self.sequence_length)
            for messages in examples
        ]
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, (ids, row_labels) in enumerate(encoded):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(row_labels)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # Position t predicts token t + 1; the cross-entropy in fp32 even under autocast.
        predicted = logits[:, :-1].float()
        targets = batch["labels"][:, 1:]
        summed = F.cross_entropy(
            predicted.reshape(-1, predicted.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        return summed, (targets != IGNORE).sum()


def finetune(config: FinetuneConfig, paths: Paths) -> dict:
    """Fine-tune the base model in `paths.model` on `paths.data`, save the result to
    `paths.out` (an adapter, or a whole model) and return the training results with the
    method, the trainable parameters and the base model (also in `paths.out/results.json`).

    With chat data, "tokens" counts the tokens learnt (the assistant's)."""
    if paths.model is None:
        raise InvalidInput("fine-tuning needs a base model: give one with --model")
    if not (paths.model / "config.json").is_file():
        raise InvalidInput(
            f"the base model folder {paths.model} has no config.json: register the model "
            "in the Hugging Face layout (config.json, weights, tokenizer files)"
        )
    data_format = choose_format(config, paths.data)
    runtime = device.start(config.device, config.precision)
    try:
        paths.scratch.mkdir(parents=True, exist_ok=True)
        tokenizer = _load_tokenizer(paths.model)
        if data_format == "chat":
            ensure_chat_template(tokenizer)
        # The same seed in every process: the same adapter initialisation everywhere.
        torch.manual_seed(config.seed)
        model = _load_model(paths.model, config)
        task = _task(data_format, model, tokenizer, config, paths)
        results = train(task, config, paths=paths, runtime=runtime)
        results |= {
            "method": config.method,
            "format": data_format,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "base_model": _base_model_name(paths.model),
        }
        if runtime.is_main:
            _save(model, tokenizer, config, paths.out, results)
        device.barrier(runtime)
        return results
    finally:
        device.stop(runtime)


def _task(
    data_format: str,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    config: FinetuneConfig,
    paths: Paths,
) -> TrainingTask:
    if data_format == "chat":
        return ChatTask(
            model,
            tokenizer,
            data=paths.data,
            spec=config.data,
            sequence_length=config.sequence_length,
        )
    # Plain text is learnt as a causal language model learns it: documents packed end to end.
    return CausalLMTask(
        model,
        tokenizer,
        data=paths.data,
        spec=config.data,
        sequence_length=config.sequence_length,
    )


def _load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"the base model's tokenizer could not be loaded ({str(exc).splitlines()[0]}): "
            "register the model with its tokenizer files"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        # The assistant's tokens are found by character offsets, which only fast ones give.
        raise InvalidInput(
            "the base model's tokenizer has no tokenizer.json (a fast tokenizer): "
            "register the model with one"
        )
    return tokenizer


def _load_model(folder: Path, config: FinetuneConfig) -> torch.nn.Module:
    """The base model in fp32 (autocast computes in lower precision where asked), with a
    LoRA adapter on it for `method = "lora"`; what is trainable is set here."""
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=torch.float32
        )
    except (OSError, ValueError) as exc:
        raise InvalidInput(
            f"the base model could not be loaded as a causal language model "
            f"({str(exc).splitlines()[0]})"
        ) from None
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and config.sequence_length > context:
        raise InvalidInput(
            f"sequence_length {config.sequence_length} is longer than the base model's "
            f"context of {context} tokens: lower it"
        )
    if config.method == "full":
        model.requires_grad_(True)
        return model
    return _with_lora(model, config)


def _with_lora(model: torch.nn.Module, config: FinetuneConfig) -> torch.nn.Module:
    # peft only for LoRA: full fine-tuning runs without it.
    from peft import LoraConfig, get_peft_model

    spec = config.lora
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        # None: peft's own choice for the architecture (c_attn for GPT-2, q/v for Llama).
        target_modules=list(spec.target_modules) or None,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise InvalidInput(
            f"LoRA cannot adapt this base model as configured ({str(exc).splitlines()[0]}): "
            "set lora.target_modules to names of its linear layers"
        ) from None


def _base_model_name(folder: Path) -> str:
    """The name the base model's configuration gives itself, else the folder it came from."""
    saved = json.loads((folder / "config.json").read_text())
    return str(saved.get("_name_or_path") or folder)


def _save(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    config: FinetuneConfig,
    out: Path,
    results: dict,
) -> None:
    """An adapter (adapter_config.json, adapter_model.safetensors), or with `merge` or full
    fine-tuning a whole model; the tokenizer beside it either way, with the template the
    model was trained on."""
    out.mkdir(parents=True, exist_ok=True)
    if config.method == "lora" and config.merge:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
