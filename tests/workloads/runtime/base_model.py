"""A tiny base model made on the spot, for the runtime's tests: a GPT-2 of a few tens of
thousands of parameters and a byte-level BPE tokenizer trained on local text, saved in the
Hugging Face layout as a registered model version would be. Nothing is downloaded.

Take the `base_model` fixture (import `base_model_fixture` into the test module, which
names it), or call `make_base_model(folder)`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["TOKENIZER_TEXT", "base_model_fixture", "make_base_model"]

EOS = "<|endoftext|>"

# Enough words for the tokenizer to learn merges that chat and plain text both use.
TOKENIZER_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "What is two plus three? Two plus three is five.",
    "A facility for open research trains, fine-tunes and evaluates open models.",
    "Hello, how are you? I am fine, thank you. And you?",
    "<|system|> <|user|> <|assistant|> You are a helpful assistant.",
    "zero one two three four five six seven eight nine ten eleven twelve",
    "red green blue yellow black white orange purple",
] * 20


def make_base_model(
    folder: Path, *, layers: int = 2, hidden: int = 32, heads: int = 2, positions: int = 128
) -> Path:
    """Train the tokenizer, build a randomly initialised GPT-2 to fit it, and save both to
    `folder`; returns `folder`."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TOKENIZER_TEXT, vocab_size=400, min_frequency=2, special_tokens=[EOS], show_progress=False
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS
    )
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", name="base_model")
def base_model_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny base model per test session; treat it as read-only."""
    return make_base_model(tmp_path_factory.mktemp("base-model"))
