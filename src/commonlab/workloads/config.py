"""What a workload is asked to do: the validated configuration of a `train`, `finetune`,
`evaluate`, `index` or `exclude` job, read from the TOML a person writes (examples in
`examples/workloads/`) or, for the last two, made by the facility.

The same schemas are read twice: at admission, where a mistake is refused with the field
and the allowed values before anything runs, and inside the job, where the runtime reads
the configuration the facility stored with it. `config_hash` is what the record keeps.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from commonlab.record.canonical import canonical_json
from commonlab.schemas import Input

__all__ = [
    "INDEX_MAX_VOCAB_SIZE",
    "KINDS",
    "ConfigOf",
    "DataSpec",
    "EvaluateConfig",
    "ExcludeConfig",
    "Exclusions",
    "FinetuneConfig",
    "IndexConfig",
    "Kind",
    "LoraSpec",
    "ModelSpec",
    "OptimizerSpec",
    "RecordAt",
    "TokenizerSpec",
    "TrainConfig",
    "WorkloadConfig",
    "config_hash",
]


class Kind(enum.StrEnum):
    TRAIN = "train"
    FINETUNE = "finetune"
    EVALUATE = "evaluate"
    INDEX = "index"
    EXCLUDE = "exclude"


KINDS = tuple(kind.value for kind in Kind)

Column = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# Keyword arguments for a transformers configuration class: sizes, not code. Lists of
# integers are per-layer sizes (wav2vec2's conv_dim, conv_kernel, conv_stride).
ArchitectureValue = (
    int
    | float
    | bool
    | Annotated[str, StringConstraints(max_length=128)]
    | Annotated[list[int], Field(max_length=64)]
)


class ModelSpec(Input):
    """A model built from a configuration, not downloaded: the architecture, and the keyword
    arguments of its transformers configuration class (`n_layer`, `hidden_size`, ...)."""

    architecture: Literal["gpt2", "llama", "wav2vec2"] = "gpt2"
    size: Annotated[dict[Column, ArchitectureValue], Field(max_length=64)] = Field(
        default_factory=dict
    )


class TokenizerSpec(Input):
    """A byte-level BPE tokenizer trained on the dataset when the model brings none."""

    vocab_size: Annotated[int, Field(ge=260, le=1_000_000)] = 4096
    min_frequency: Annotated[int, Field(ge=1, le=1_000_000)] = 2
    # How many records the tokenizer learns from (streamed, never all in memory).
    sample_records: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000


class DataSpec(Input):
    """Which records of the dataset version a workload reads, and from which columns.

    Records come from JSONL or Parquet files (one record per line or row) and from
    WebDataset shards (`.tar` members grouped by key: `.txt` text, `.wav`/`.flac` audio)."""

    text_column: Column = "text"
    audio_column: Column = "audio"
    # For chat data (OpenAI's `{"messages": [...]}`) in fine-tuning.
    messages_column: Column = "messages"
    # For evaluation samples.
    input_column: Column = "input"
    target_column: Column = "target"
    # Only files under this folder of the version (all of them when empty).
    split: Annotated[str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9._/-]*$")] = ""
    max_records: Annotated[int, Field(ge=1, le=10_000_000_000)] | None = None


class OptimizerSpec(Input):
    """AdamW with warm-up and a decay schedule."""

    learning_rate: Annotated[float, Field(gt=0, le=1)] = 3e-4
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.01
    warmup_steps: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    grad_clip: Annotated[float, Field(gt=0, le=1_000)] = 1.0


class _Training(Input):
    """What every workload that takes optimizer steps shares."""

    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    data: DataSpec = Field(default_factory=DataSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    sequence_length: Annotated[int, Field(ge=8, le=131_072)] = 128
    # The global batch (sequences per optimizer step, over all processes).
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 8
    # Sequences per forward pass in one process; the rest is gradient accumulation.
    micro_batch_size: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_steps: Annotated[int, Field(ge=1, le=100_000_000)] = 100
    checkpoint_every: Annotated[int, Field(ge=1, le=100_000_000)] = 50
    log_every: Annotated[int, Field(ge=1, le=100_000_000)] = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"


class TrainConfig(_Training):
    """Train a model from scratch: a causal language model on text or code, or a speech
    recognizer (`task = "asr"`) on audio with transcripts."""

    task: Literal["causal_lm", "asr"] = "causal_lm"
    model: ModelSpec = Field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)

    @model_validator(mode="after")
    def _architecture_fits_task(self) -> TrainConfig:
        speech = self.model.architecture == "wav2vec2"
        if speech != (self.task == "asr"):
            wanted = "wav2vec2" if self.task == "asr" else "gpt2 or llama"
            raise ValueError(
                f"model.architecture {self.model.architecture!r} does not fit task "
                f"{self.task!r}: use {wanted}"
            )
        return self


class LoraSpec(Input):
    r: Annotated[int, Field(ge=1, le=4096)] = 8
    alpha: Annotated[int, Field(ge=1, le=65_536)] = 16
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # Module names to adapt; empty: what peft knows for the architecture.
    target_modules: Annotated[list[Column], Field(max_length=64)] = Field(default_factory=list)


class FinetuneConfig(_Training):
    """Refine a registered base model on chat data (`{"messages": [...]}`) or plain text:
    LoRA (the output is an adapter, or merged into the weights with `merge = true`) or
    full fine-tuning."""

    method: Literal["lora", "full"] = "lora"
    format: Literal["auto", "chat", "text"] = "auto"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    merge: bool = False
    # Fine-tuning starts from a trained model: a smaller default step.
    optimizer: OptimizerSpec = Field(
        default_factory=lambda: OptimizerSpec(learning_rate=1e-4, schedule="constant")
    )


class EvaluateConfig(Input):
    """Evaluate a registered model on a task whose samples are a registered dataset's
    records: Inspect generates and scores each sample; lm-eval scores by log-likelihood."""

    harness: Literal["inspect", "lm_eval"] = "inspect"
    # The leaderboard this evaluation counts on.
    task: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,79}$")]
    scorer: Literal["exact", "includes", "match"] = "includes"
    data: DataSpec = Field(default_factory=DataSpec)
    max_new_tokens: Annotated[int, Field(ge=1, le=32_768)] = 32
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


# Training-data search (issue 18) ---------------------------------------------------------------

# The exact index stores token ids as uint16 and keeps 65535 as the record separator
# (datasearch.layout.MAX_VOCAB_SIZE, which a test holds this to; not imported, so admission
# needs no numpy).
INDEX_MAX_VOCAB_SIZE = 65_535
MAX_EXCLUDED = 1_000_000
MAX_OPTOUTS = 100_000
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]


class RecordAt(Input):
    """A record of the dataset version: a file's path in it, and the record's number in the
    file as the facility numbers them (from 0; JSONL's blank lines are not records)."""

    file: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    index: Annotated[int, Field(ge=0, le=2**63 - 1)]

    @field_validator("file")
    @classmethod
    def _inside_the_version(cls, file: str) -> str:
        if "\\" in file or any(part in ("", ".", "..") for part in file.split("/")):
            raise ValueError(f"{file!r}: give the file's path inside the version (a/b.jsonl)")
        return file


class Exclusions(Input):
    """Records left out: by position, and by the content digest of their text (see
    `datasearch.content`: a record whose text, or any one text member, has the digest)."""

    # The opt-out requests honoured, for the card and the record.
    optouts: Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=MAX_OPTOUTS)] = Field(
        default_factory=list
    )
    records: Annotated[list[RecordAt], Field(max_length=MAX_EXCLUDED)] = Field(default_factory=list)
    sha256: Annotated[list[Sha256], Field(max_length=MAX_EXCLUDED)] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.records and not self.sha256


class IndexConfig(Input):
    """Build an exact-match search index of a dataset version's text: a byte-level BPE
    learned from the records, and a suffix array over their token ids."""

    # The text members indexed; None: every text member but the source and licence fields.
    text_columns: Annotated[list[Column], Field(min_length=1, max_length=64)] | None = None
    vocab_size: Annotated[int, Field(ge=260, le=INDEX_MAX_VOCAB_SIZE)] = 32_000
    min_frequency: Annotated[int, Field(ge=1, le=1_000_000)] = 2
    # How many records the tokenizer learns from (the first ones indexed, streamed).
    sample_records: Annotated[int, Field(ge=1, le=100_000_000)] = 100_000
    # Index at most this many records (the first ones, in file order).
    max_records: Annotated[int, Field(ge=1, le=10_000_000_000)] | None = None
    # Also embed every record (all-MiniLM-L6-v2) into an ANN index for semantic search: a
    # third pass over the records, at the embedding model's pace (the `search` extra).
    semantic: bool = False
    exclude: Exclusions = Field(default_factory=Exclusions)

    @property
    def tokenizer(self) -> TokenizerSpec:
        return TokenizerSpec(
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            sample_records=self.sample_records,
        )


class ExcludeConfig(Input):
    """Make a new version of a dataset without the records named (by position or content
    digest); every other file and record is carried over unchanged."""

    exclude: Exclusions

    @model_validator(mode="after")
    def _something_to_exclude(self) -> ExcludeConfig:
        if self.exclude.empty:
            raise ValueError(
                "nothing to exclude: name records (exclude.records) or content digests "
                "(exclude.sha256)"
            )
        return self


WorkloadConfig = TrainConfig | FinetuneConfig | EvaluateConfig | IndexConfig | ExcludeConfig
ConfigOf: dict[Kind, type[WorkloadConfig]] = {
    Kind.TRAIN: TrainConfig,
    Kind.FINETUNE: FinetuneConfig,
    Kind.EVALUATE: EvaluateConfig,
    Kind.INDEX: IndexConfig,
    Kind.EXCLUDE: ExcludeConfig,
}


def config_hash(config: WorkloadConfig) -> str:
    """SHA-256 of the configuration as canonical JSON (RFC 8785), defaults filled in: the
    same configuration hashes the same however it was written."""
    return hashlib.sha256(canonical_json(config.model_dump(mode="json"))).hexdigest()
