"""How big a model a training configuration asks for, found before anything runs: the
configuration is built and the model laid out on PyTorch's `meta` device (shapes only, no
memory), so a misspelt size key is named at admission and a model that cannot fit in the
job's memory is refused there instead of ending the job out of memory an hour later."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from commonlab.workloads.config import TrainConfig

__all__ = ["BYTES_PER_PARAMETER", "Estimate", "estimate"]

# Training in fp32 with AdamW holds the weights, their gradients and two moments: 16 bytes a
# parameter before any activation. A floor, not a forecast.
BYTES_PER_PARAMETER = 16


@dataclass(frozen=True)
class Estimate:
    parameters: int

    @property
    def training_bytes(self) -> int:
        return self.parameters * BYTES_PER_PARAMETER


def estimate(config: TrainConfig) -> Estimate:
    """The parameters the configured model has (InvalidInput naming a size key it refuses).
    A speech model's vocabulary is the transcripts' characters, unknown here: a generous 100
    stands in (it sizes only the output layer)."""
    if config.task == "asr":
        from transformers import Wav2Vec2ForCTC

        from commonlab.workloads.runtime.asr import model_config as speech_config

        settings = speech_config(config.model.size)
        settings.vocab_size = 100
        model_class = Wav2Vec2ForCTC
    else:
        from commonlab.workloads.runtime.lm import ARCHITECTURES, model_config

        settings = model_config(
            config.model.architecture,
            config.model.size,
            vocab_size=config.tokenizer.vocab_size,
            sequence_length=config.sequence_length,
            special=dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id")),
        )
        model_class = ARCHITECTURES[config.model.architecture][1]
    with torch.device("meta"):
        model = model_class(settings)
    return Estimate(parameters=sum(p.numel() for p in model.parameters()))
