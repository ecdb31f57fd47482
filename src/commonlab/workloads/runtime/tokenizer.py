"""The tokenizer a model is trained with: the one the model folder brings, or a byte-level
BPE learned from the dataset's text (any byte sequence encodes, so no text is unknown).

A learned tokenizer is kept in the scratch folder: a resumed run, and every process of a
distributed one, use the very tokenizer the first process learned, never a second copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from commonlab.workloads.config import TokenizerSpec, TrainConfig
from commonlab.workloads.runtime.data import iter_records
from commonlab.workloads.runtime.paths import Paths

if TYPE_CHECKING:  # torch is imported where a model trains, not where an index is built
    from commonlab.workloads.runtime.device import Runtime

__all__ = [
    "END_OF_TEXT",
    "PAD",
    "SCRATCH_FOLDER",
    "has_tokenizer",
    "learn_tokenizer",
    "tokenizer_for",
]

END_OF_TEXT = "<|endoftext|>"  # begins and ends a document, as in GPT-2
PAD = "<|pad|>"
SCRATCH_FOLDER = "tokenizer"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def learn_tokenizer(texts: Iterable[str], spec: TokenizerSpec) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `spec.vocab_size` tokens (special tokens included) learned from
    the first `spec.sample_records` texts, streamed."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=spec.min_frequency,
        special_tokens=[END_OF_TEXT, PAD],
        # Every byte is a token from the start: nothing the model meets later is unknown.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(islice(texts, spec.sample_records), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=PAD,
    )


def has_tokenizer(folder: Path | None) -> bool:
    return folder is not None and any((folder / name).is_file() for name in _TOKENIZER_FILES)


def tokenizer_for(config: TrainConfig, paths: Paths, runtime: Runtime) -> PreTrainedTokenizerBase:
    """The model folder's tokenizer when it has one; else the one learned earlier in this
    run's scratch folder; else learned now by the first process (the others wait for it)."""
    if has_tokenizer(paths.model):
        tokenizer = AutoTokenizer.from_pretrained(paths.model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer
    from commonlab.workloads.runtime.device import barrier

    kept = paths.scratch / SCRATCH_FOLDER
    if runtime.is_main and not has_tokenizer(kept):
        learned = learn_tokenizer(_texts(paths.data, config), config.tokenizer)
        # Saved beside and renamed into place: a stopped run never leaves half a tokenizer.
        temporary = paths.scratch / f".tmp-{SCRATCH_FOLDER}"
        shutil.rmtree(temporary, ignore_errors=True)
        learned.save_pretrained(temporary)
        shutil.rmtree(kept, ignore_errors=True)
        temporary.rename(kept)
    barrier(runtime)
    return AutoTokenizer.from_pretrained(kept)


def _texts(root: Path, config: TrainConfig) -> Iterator[str]:
    column = config.data.text_column
    for record in iter_records(root, config.data, [column]):
        yield str(record[column])
