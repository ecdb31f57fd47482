"""Train a speech recognizer from scratch (`task = "asr"`): a wav2vec2 encoder with a CTC
head over the characters of the dataset's transcripts, built from `model.size`, trained on
audio + transcript records, and saved with its processor (feature extractor + character
tokenizer) so `Wav2Vec2ForCTC.from_pretrained(out)` and `Wav2Vec2Processor.from_pretrained
(out)` transcribe with `processor.batch_decode(logits.argmax(-1))`.

A sequence here is one utterance: `sequence_length` bounds its audio frames (what the
convolutional feature encoder leaves of the samples; longer clips are skipped, never cut,
which would part them from their transcripts). The loss is per transcript character, and
`tokens` counts characters (the results' `unit`).
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec, TrainConfig
from commonlab.workloads.runtime.audio import SAMPLING_RATE, audio_length, decode_audio
from commonlab.workloads.runtime.data import iter_records
from commonlab.workloads.runtime.device import start, stop
from commonlab.workloads.runtime.loop import repeat_epochs, train
from commonlab.workloads.runtime.metrics import MetricsWriter
from commonlab.workloads.runtime.paths import Paths

__all__ = [
    "BLANK",
    "ERROR_RATE_SAMPLES",
    "UNKNOWN",
    "WORD_DELIMITER",
    "FrameBounds",
    "SpeechRecord",
    "SpeechTask",
    "Survey",
    "build_model",
    "build_processor",
    "build_vocabulary",
    "collate",
    "ctc_loss_sum",
    "error_rate",
    "frame_bounds",
    "frame_counter",
    "model_config",
    "normalize_transcript",
    "speech_records",
    "survey",
    "train_asr",
    "transcribe",
    "with_vocabulary",
]

IGNORE = -100  # the label the CTC loss skips
# The CTC blank is the padding token: Wav2Vec2ForCTC takes `pad_token_id` as its blank.
BLANK = "<pad>"
UNKNOWN = "<unk>"
# The tokenizer writes a space between words as this character, and reads it back as one.
WORD_DELIMITER = "|"
# Set from the transcripts, or what the model class itself reads: not for `model.size`.
_DERIVED_SIZE_KEYS = {"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"}
_NOT_SIZE_KEYS = {
    "_name_or_path",
    "architectures",
    "dtype",
    "id2label",
    "label2id",
    "model_type",
    "output_attentions",
    "output_hidden_states",
    "problem_type",
    "return_dict",
    "transformers_version",
}
# Training choices that differ from Wav2Vec2Config's own defaults; `model.size` may still
# set each. Layer norm in the feature encoder makes a padded utterance compute as an
# unpadded one (the group-norm variant does not honour the attention mask); a CTC loss
# that cannot align an utterance is zero instead of infinite; no layer drop, because DDP
# needs every layer's gradient at every step. Training sums the CTC loss itself
# (`ctc_loss_sum`); the saved model's mean reduction is for whoever fine-tunes it.
_TRAINING_DEFAULTS: dict[str, object] = {
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
    "ctc_loss_reduction": "mean",
    "ctc_zero_infinity": True,
    "layerdrop": 0.0,
}


def normalize_transcript(text: str) -> str:
    """Lower case, words separated by single spaces: the form the vocabulary is built from
    and the model learns to write."""
    return " ".join(text.lower().split())


def build_vocabulary(transcripts: Iterable[str]) -> dict[str, int]:
    """The CTC vocabulary: blank, unknown, word delimiter, then every character of the
    normalized transcripts in code point order (the same transcripts give the same ids)."""
    characters: set[str] = set()
    for text in transcripts:
        characters.update(normalize_transcript(text).replace(" ", ""))
    characters.discard(WORD_DELIMITER)  # taken by the delimiter itself
    ordered = [BLANK, UNKNOWN, WORD_DELIMITER, *sorted(characters)]
    return {token: index for index, token in enumerate(ordered)}


def build_processor(vocabulary: Mapping[str, int]) -> Wav2Vec2Processor:
    """A character tokenizer over `vocabulary` and a 16 kHz feature extractor that
    normalizes each utterance and returns the attention mask of a padded batch."""
    with tempfile.TemporaryDirectory() as folder:
        vocab_file = Path(folder) / "vocab.json"
        vocab_file.write_text(json.dumps(dict(vocabulary), ensure_ascii=False), encoding="utf-8")
        tokenizer = Wav2Vec2CTCTokenizer(
            str(vocab_file),
            unk_token=UNKNOWN,
            pad_token=BLANK,
            word_delimiter_token=WORD_DELIMITER,
            # CTC needs no sentence markers; without them the vocabulary is the file's.
            bos_token=None,
            eos_token=None,
            # The tokenizer's own lower-casing upper-cases its input; transcripts are
            # normalized before they reach it instead.
            do_lower_case=False,
        )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLING_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def model_config(size: Mapping[str, object]) -> Wav2Vec2Config:
    """Wav2Vec2Config from `model.size` over transformers' defaults (wav2vec2-base) and
    the training defaults above; `with_vocabulary` completes it once the transcripts are
    read. An unknown key, or one the transcripts decide, is refused by name before any
    data is read."""
    allowed = set(Wav2Vec2Config().to_dict()) - _NOT_SIZE_KEYS - _DERIVED_SIZE_KEYS
    derived = sorted(set(size) & _DERIVED_SIZE_KEYS)
    if derived:
        raise InvalidInput(
            f"model.size sets {', '.join(derived)}, which the transcripts' characters "
            "decide for a speech model: remove it"
        )
    unknown = sorted(set(size) - allowed)
    if unknown:
        raise InvalidInput(
            f"model.size has keys wav2vec2 does not know: {', '.join(unknown)} "
            "(see transformers' Wav2Vec2Config, e.g. hidden_size, num_hidden_layers, "
            "num_attention_heads, intermediate_size, conv_dim, conv_kernel, conv_stride)"
        )
    try:
        return Wav2Vec2Config(**{**_TRAINING_DEFAULTS, **size})
    except (TypeError, ValueError, StrictDataclassError) as exc:
        # e.g. conv_dim, conv_kernel and conv_stride of different lengths; transformers'
        # validators wrap the reason, which is the last line.
        reason = str(exc).strip().splitlines()[-1].strip()
        raise InvalidInput(f"model.size does not make a wav2vec2 model: {reason}") from exc


def with_vocabulary(config: Wav2Vec2Config, vocabulary: Mapping[str, int]) -> Wav2Vec2Config:
    """`config` with the CTC head sized to `vocabulary` and its blank as padding."""
    config.vocab_size = len(vocabulary)
    config.pad_token_id = vocabulary[BLANK]
    return config


def build_model(config: Wav2Vec2Config, *, seed: int) -> Wav2Vec2ForCTC:
    """A randomly initialised model, the same for the same seed."""
    torch.manual_seed(seed)
    try:
        return Wav2Vec2ForCTC(config)
    except (KeyError, RuntimeError, ValueError) as exc:
        # e.g. a hidden_size the positional convolution's groups do not divide, or an
        # activation (hidden_act) transformers does not know.
        raise InvalidInput(f"model.size does not make a wav2vec2 model: {exc}") from exc


def frame_counter(config: Wav2Vec2Config) -> Callable[[int], int]:
    """How many audio frames the feature encoder makes of `n` samples (each convolution
    without padding: floor((n - kernel) / stride) + 1)."""
    layers = list(zip(config.conv_kernel, config.conv_stride, strict=True))

    def frames(samples: int) -> int:
        for kernel, stride in layers:
            samples = (samples - kernel) // stride + 1 if samples >= kernel else 0
        return samples

    return frames


@dataclass(frozen=True)
class FrameBounds:
    """Which utterances the model can learn from: at least `least` frames (SpecAugment
    masks spans of that many) and no more than `most` (`sequence_length`), and at least
    one frame per character of the transcript, or CTC cannot align them."""

    frames_of: Callable[[int], int]
    least: int
    most: int

    def fits(self, samples: int, characters: int) -> bool:
        frames = self.frames_of(samples)
        return max(self.least, characters) <= frames <= self.most


def frame_bounds(config: Wav2Vec2Config, *, sequence_length: int) -> FrameBounds:
    masking = config.apply_spec_augment and config.mask_time_prob > 0
    least = config.mask_time_length if masking else 1
    return FrameBounds(frame_counter(config), least=least, most=sequence_length)


@dataclass(frozen=True)
class SpeechRecord:
    """One training example as the loop streams it: still-encoded audio, decoded only in
    `collate` (the loop reads every example in every process, keeps its share)."""

    key: str  # "#n": the record's position in the dataset's file order
    audio: object  # the audio cell: encoded bytes or a {"bytes", "path"} struct
    transcript: str  # normalized


def speech_records(root: Path, spec: DataSpec) -> Iterator[SpeechRecord]:
    """Every audio + transcript record of the dataset, in file order."""
    columns = [spec.audio_column, spec.text_column]
    for index, record in enumerate(iter_records(root, spec, columns)):
        text = record[spec.text_column]
        key = f"#{index}"
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise InvalidInput(
                f"record {key}: its {spec.text_column!r} column holds "
                f"{type(text).__name__}, not a transcript"
            )
        yield SpeechRecord(key, record[spec.audio_column], normalize_transcript(text))


@dataclass(frozen=True)
class Survey:
    """What one pass over the dataset, before training, found."""

    vocabulary: dict[str, int]
    usable: int  # utterances within the frame bounds
    skipped: int  # the others
    skipped_keys: list[str]  # the first few of them, for the results


_SKIPPED_KEYS_SHOWN = 10


def survey(root: Path, spec: DataSpec, bounds: FrameBounds) -> Survey:
    """The character vocabulary of every transcript, and how many utterances the model
    can learn from (audio lengths read from the file headers, nothing decoded)."""
    characters: list[str] = []
    usable, skipped_keys, skipped = 0, [], 0
    for record in speech_records(root, spec):
        characters.append(record.transcript)
        if bounds.fits(audio_length(record.audio, key=record.key), len(record.transcript)):
            usable += 1
        else:
            skipped += 1
            if len(skipped_keys) < _SKIPPED_KEYS_SHOWN:
                skipped_keys.append(record.key)
    return Survey(build_vocabulary(characters), usable, skipped, skipped_keys)


def collate(
    records: Sequence[SpeechRecord], processor: Wav2Vec2Processor
) -> dict[str, torch.Tensor]:
    """Decoded, normalized and padded audio with its attention mask, and the transcripts'
    character ids padded with -100 (which the CTC loss ignores)."""
    features = processor.feature_extractor(
        [decode_audio(record.audio, key=record.key) for record in records],
        sampling_rate=SAMPLING_RATE,
        padding=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    encoded = [processor.tokenizer(record.transcript).input_ids for record in records]
    labels = torch.full((len(records), max(1, *map(len, encoded))), IGNORE, dtype=torch.long)
    for row, ids in enumerate(encoded):
        labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return {
        "input_values": features["input_values"],
        "attention_mask": features["attention_mask"].long(),
        "labels": labels,
    }


def ctc_loss_sum(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], *, core: Wav2Vec2ForCTC
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CTC loss summed over the batch, and the number of transcript characters it
    covers: the loop divides one by the other, so a step's loss is the mean per
    character whatever the split into micro-batches and processes. `model` is what runs
    (DDP's wrapper in a distributed run), `core` the model itself."""
    logits = model(
        input_values=batch["input_values"], attention_mask=batch["attention_mask"]
    ).logits
    labels = batch["labels"]
    present = labels != IGNORE
    frames = core._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
    log_probs = torch.nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32)
    # cuDNN's CTC is not deterministic and wants other layouts: the resumed run must
    # repeat the uninterrupted one exactly.
    with torch.backends.cudnn.flags(enabled=False):
        loss = torch.nn.functional.ctc_loss(
            log_probs.transpose(0, 1),
            labels.masked_select(present),
            frames,
            present.sum(-1),
            blank=core.config.pad_token_id,
            reduction="sum",
            zero_infinity=core.config.ctc_zero_infinity,
        )
    return loss, present.sum()


class SpeechTask:
    """The loop's view of speech training: an endless stream of the usable utterances,
    epoch after epoch in file order, decoded and padded a micro-batch at a time."""

    def __init__(
        self,
        model: Wav2Vec2ForCTC,
        processor: Wav2Vec2Processor,
        *,
        root: Path,
        spec: DataSpec,
        bounds: FrameBounds,
    ) -> None:
        self.model = model
        self.processor = processor
        self._root, self._spec, self._bounds = root, spec, bounds

    def epoch(self) -> Iterator[SpeechRecord]:
        for record in speech_records(self._root, self._spec):
            samples = audio_length(record.audio, key=record.key)
            if self._bounds.fits(samples, len(record.transcript)):
                yield record

    def examples(self, start: int) -> Iterator[SpeechRecord]:
        return repeat_epochs(
            self.epoch, start=start, empty="the dataset has no utterance the model can learn"
        )

    def collate(self, examples: list[SpeechRecord]) -> dict[str, torch.Tensor]:
        return collate(examples, self.processor)

    def loss(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return ctc_loss_sum(model, batch, core=self.model)


@torch.no_grad()
def transcribe(
    model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, records: Sequence[SpeechRecord]
) -> list[str]:
    """Greedy CTC transcripts of `records` (the model is left in evaluation mode)."""
    model.eval()
    batch = collate(records, processor)
    device = next(model.parameters()).device
    logits = model(
        input_values=batch["input_values"].to(device),
        attention_mask=batch["attention_mask"].to(device),
    ).logits
    return processor.batch_decode(logits.argmax(-1).cpu())


def train_asr(config: TrainConfig, paths: Paths) -> dict:
    """Train a wav2vec2 CTC model on the dataset's audio and transcripts; save it and its
    processor to `paths.out`; return the contract's training results (tokens are
    transcript characters, `unit`) with the character and word error rates of greedy
    decoding on the first training utterances."""
    if config.task != "asr" or config.model.architecture != "wav2vec2":
        raise InvalidInput("train_asr trains task 'asr' with model.architecture 'wav2vec2'")
    # Size mistakes surface before a pass over the data.
    model_settings = model_config(config.model.size)
    bounds = frame_bounds(model_settings, sequence_length=config.sequence_length)
    found = survey(paths.data, config.data, bounds)
    if found.usable == 0:
        hop = math.prod(model_settings.conv_stride)
        raise InvalidInput(
            f"none of the dataset's {found.skipped} utterances fits the model: "
            f"sequence_length {config.sequence_length} frames holds "
            f"{config.sequence_length * hop / SAMPLING_RATE:.2f} s of audio, and an "
            f"utterance needs at least {bounds.least} frame(s) and one per character "
            "of its transcript; raise sequence_length or use shorter clips"
        )
    processor = build_processor(found.vocabulary)
    model = build_model(with_vocabulary(model_settings, found.vocabulary), seed=config.seed)
    task = SpeechTask(model, processor, root=paths.data, spec=config.data, bounds=bounds)
    runtime = start(config.device, config.precision)
    try:
        results = train(task, config, paths=paths, runtime=runtime)
        if runtime.is_main:
            results.update(_finish(task, paths, results))
    finally:
        stop(runtime)
    results.update(
        unit="characters",
        sampling_rate=SAMPLING_RATE,
        vocabulary_size=len(found.vocabulary),
        utterances=found.usable,
        skipped_utterances=found.skipped,
        skipped_keys=found.skipped_keys,
    )
    if runtime.is_main:
        paths.out.mkdir(parents=True, exist_ok=True)
        (paths.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# How many training utterances the closing error rates are measured on.
ERROR_RATE_SAMPLES = 8


def _finish(task: SpeechTask, paths: Paths, results: dict) -> dict:
    """Save the model and processor, and measure the error rates of greedy decoding."""
    paths.out.mkdir(parents=True, exist_ok=True)
    task.model.save_pretrained(paths.out)
    task.processor.save_pretrained(paths.out)
    records = list(itertools.islice(task.epoch(), ERROR_RATE_SAMPLES))
    hypotheses = transcribe(task.model, task.processor, records)
    references = [record.transcript for record in records]
    cer = error_rate(references, hypotheses)
    wer = error_rate([r.split() for r in references], [h.split() for h in hypotheses])
    with MetricsWriter(paths.metrics) as metrics:
        metrics.write(results["steps"], eval_cer=cer, eval_wer=wer)
    return {
        "cer": cer,
        "wer": wer,
        "error_rate_samples": len(records),
        "transcripts": [
            {"key": r.key, "reference": r.transcript, "hypothesis": h}
            for r, h in zip(records, hypotheses, strict=True)
        ],
    }


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Edit distance over reference length, summed over the pairs: the character error rate
    of strings, the word error rate of word lists. Over 1 when the hypotheses ramble."""
    edits = sum(_edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    length = sum(len(r) for r in references)
    return edits / length if length else float(edits > 0)


def _edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, wanted in enumerate(reference, start=1):
        current = [i]
        for j, written in enumerate(hypothesis, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (wanted != written))
            )
        previous = current
    return previous[-1]
