"""runtime/asr.py and runtime/audio.py: a tiny wav2vec2 trained on espeak-ng speech from a
WebDataset shard and from Parquet learns (its CTC loss falls), saves a model and processor
that load and transcribe, resumes to the same losses, and refuses what it cannot use (no
audio column, undecodable audio, unknown sizes, a text architecture) by name."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydantic
import pytest
import soundfile
import torch

from commonlab.errors import InvalidInput
from commonlab.workloads.config import DataSpec, TrainConfig
from commonlab.workloads.runtime.__main__ import main
from commonlab.workloads.runtime.asr import (
    BLANK,
    build_model,
    build_processor,
    build_vocabulary,
    collate,
    ctc_loss_sum,
    error_rate,
    frame_bounds,
    model_config,
    speech_records,
    survey,
    train_asr,
    with_vocabulary,
)
from commonlab.workloads.runtime.audio import SAMPLING_RATE, audio_length, decode_audio
from commonlab.workloads.runtime.metrics import read_metrics
from commonlab.workloads.runtime.paths import Paths
from tests.workloads.speech import UTTERANCES, espeak, write_parquet, write_webdataset

# About 32k parameters; 80 samples a frame (200 frames a second of 16 kHz audio).
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [32, 32, 32],
    "conv_kernel": [10, 4, 4],
    "conv_stride": [5, 4, 4],
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
STEPS = 15


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: on a machine whose cores other tests share, a second thread
    spins waiting for a core and a step takes ten times as long."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def asr_config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "task": "asr",
        "model": {"architecture": "wav2vec2", "size": TINY},
        "batch_size": 4,
        "max_steps": STEPS,
        "sequence_length": 512,
        "checkpoint_every": 100,
        "log_every": 5,
        "device": "cpu",
        "optimizer": {"learning_rate": 3e-3, "schedule": "constant"},
    }
    return TrainConfig.model_validate(settings | overrides)


def job_paths(data: Path, work: Path) -> Paths:
    return Paths(data, None, work / "out", work / "scratch", work / "metrics.jsonl")


@pytest.fixture(scope="module")
def webdataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_webdataset(tmp_path_factory.mktemp("speech") / "webdataset")


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Hugging Face datasets' Audio struct: the harder of the two Parquet forms.
    return write_parquet(tmp_path_factory.mktemp("speech") / "parquet", audio_struct=True)


# --- audio ---------------------------------------------------------------------------


def test_wav_flac_and_the_datasets_struct_decode_to_the_same_16k_mono() -> None:
    wav = espeak("good morning")
    original, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    assert rate != SAMPLING_RATE  # espeak-ng speaks at 22.05 kHz: resampling runs
    stereo = io.BytesIO()
    soundfile.write(stereo, np.stack([original, original], axis=1), rate, format="FLAC")

    from_wav = decode_audio(wav, key="#0")
    from_flac = decode_audio(stereo.getvalue(), key="#1")
    from_struct = decode_audio({"bytes": wav, "path": "a.wav"}, key="#2")

    assert from_wav.dtype == np.float32 and from_wav.ndim == 1
    assert from_wav.size == round(original.size * SAMPLING_RATE / rate)
    assert audio_length(wav, key="#0") == from_wav.size
    np.testing.assert_allclose(from_flac, from_wav, atol=1e-3)  # FLAC is 16-bit
    np.testing.assert_array_equal(from_struct, from_wav)


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        (b"RIFF and then nothing useful", "not a WAV or FLAC file"),
        ({"bytes": None, "path": "clips/a.wav"}, "only the path 'clips/a.wav'"),
        (["not", "audio"], "holds list"),
    ],
)
def test_audio_that_cannot_be_decoded_is_refused_naming_the_record(
    cell: object, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason) as refused:
        decode_audio(cell, key="#7")
    assert "record #7" in refused.value.message


# --- vocabulary, processor, sizes ------------------------------------------------------


def test_the_processor_round_trips_characters_and_collapses_ctc_output(tmp_path: Path) -> None:
    vocabulary = build_vocabulary(["Habari  Yako", "the cat"])
    assert vocabulary[BLANK] == 0 and " " not in vocabulary
    build_processor(vocabulary).save_pretrained(tmp_path)

    from transformers import Wav2Vec2Processor

    processor = Wav2Vec2Processor.from_pretrained(tmp_path)
    ids = processor.tokenizer("habari yako").input_ids
    assert processor.decode(ids, group_tokens=False) == "habari yako"
    # CTC output: repeats collapse, blanks vanish, the delimiter is a space.
    h, a, t, delimiter = (processor.tokenizer.convert_tokens_to_ids(c) for c in "hat|")
    assert processor.batch_decode(torch.tensor([[h, h, 0, a, 0, delimiter, t, t]])) == ["ha t"]


def test_unknown_size_keys_and_derived_ones_are_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="does not know: hiden_size, layers"):
        model_config({"hiden_size": 32, "layers": 2})
    with pytest.raises(InvalidInput, match="sets vocab_size"):
        model_config({"vocab_size": 40})
    with pytest.raises(InvalidInput, match="does not make a wav2vec2 model"):
        model_config({"conv_dim": [32, 32], "conv_kernel": [10, 3], "conv_stride": [5]})


def test_a_speech_task_with_a_text_architecture_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="does not fit task 'asr': use wav2vec2"):
        TrainConfig.model_validate({"task": "asr", "model": {"architecture": "gpt2"}})


def test_error_rates_count_edits_over_the_reference() -> None:
    assert error_rate(["abc"], ["abc"]) == 0.0
    assert error_rate(["abcd"], ["abd"]) == 0.25
    assert error_rate(["ab", "cd"], ["", "cdxx"]) == 1.0
    assert error_rate([["the", "cat"]], [["a", "cat"]]) == 0.5


def test_the_summed_ctc_loss_is_transformers_own_over_the_characters(webdataset: Path) -> None:
    config = model_config(TINY)
    bounds = frame_bounds(config, sequence_length=512)
    found = survey(webdataset, DataSpec(), bounds)
    processor = build_processor(found.vocabulary)
    model = build_model(with_vocabulary(config, found.vocabulary), seed=0).eval()
    records = list(itertools.islice(speech_records(webdataset, DataSpec()), 3))
    batch = collate(records, processor)

    loss, characters = ctc_loss_sum(model, batch, core=model)

    assert characters == sum(len(r.transcript) for r in records)
    model.config.ctc_loss_reduction = "sum"
    assert loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)


# --- training --------------------------------------------------------------------------


def _assert_learned_and_saved(results: dict, work: Path) -> None:
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    losses = results["losses"]
    assert len(losses) == STEPS == results["steps"]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert results["unit"] == "characters"
    assert results["tokens"] > 0 and results["resumed_from_step"] == 0
    assert results["utterances"] == len(UTTERANCES) and results["skipped_utterances"] == 0
    assert results["cer"] >= 0.0 and results["error_rate_samples"] == 8
    assert json.loads((work / "out" / "results.json").read_text()) == results

    processor = Wav2Vec2Processor.from_pretrained(work / "out")
    model = Wav2Vec2ForCTC.from_pretrained(work / "out").eval()
    clips = [decode_audio(espeak(u.text, voice=u.voice), key=u.key) for u in UTTERANCES[:3]]
    batch = processor(clips, sampling_rate=SAMPLING_RATE, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == len(processor.tokenizer)
    transcripts = processor.batch_decode(logits.argmax(-1))
    assert len(transcripts) == 3 and all(isinstance(t, str) for t in transcripts)

    lines, _ = read_metrics(work / "metrics.jsonl")
    assert [line["step"] for line in lines if "loss" in line] == [5, 10, 15]
    assert lines[-1]["eval_cer"] == pytest.approx(results["cer"])


def test_training_on_a_webdataset_shard_learns_and_saves_a_transcriber(
    webdataset: Path, tmp_path: Path
) -> None:
    results = train_asr(asr_config(), job_paths(webdataset, tmp_path))
    _assert_learned_and_saved(results, tmp_path)


def test_training_on_parquet_through_the_job_entry_point(parquet: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(asr_config().model_dump_json())
    paths = job_paths(parquet, tmp_path)
    argv = ["train", "--config", str(config_file), "--data", str(parquet)]
    argv += ["--out", str(paths.out), "--scratch", str(paths.scratch)]
    assert main([*argv, "--metrics", str(paths.metrics)]) == 0
    _assert_learned_and_saved(json.loads((paths.out / "results.json").read_text()), tmp_path)


def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_losses(
    webdataset: Path, tmp_path: Path
) -> None:
    whole = train_asr(asr_config(max_steps=5), job_paths(webdataset, tmp_path / "whole"))
    # (A constant learning rate: the schedule then does not depend on max_steps.)
    # Stopped after 2 steps, then resubmitted with the same scratch folder: the second
    # run starts at utterance 8 of 12, inside an epoch, where only the data position
    # the loop restores finds the uninterrupted run's batches.
    interrupted = job_paths(webdataset, tmp_path / "interrupted")
    train_asr(asr_config(max_steps=2), interrupted)
    resumed = train_asr(asr_config(max_steps=5), interrupted)

    assert resumed["resumed_from_step"] == 2
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-6)
    assert resumed["cer"] == whole["cer"]


# --- what training refuses ---------------------------------------------------------------


def test_a_dataset_without_audio_is_refused_naming_its_columns(tmp_path: Path) -> None:
    table = pa.table({"id": ["a"], "text": ["hello"]})
    (tmp_path / "data").mkdir()
    pq.write_table(table, tmp_path / "data" / "train.parquet")
    with pytest.raises(InvalidInput, match=r"no column 'audio' \(it has: id, text\)"):
        train_asr(asr_config(), job_paths(tmp_path / "data", tmp_path))

    shard = tmp_path / "texts" / "shard.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:
        info = tarfile.TarInfo("k1.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(InvalidInput, match=r"no column 'audio'.*txt"):
        train_asr(asr_config(), job_paths(shard.parent, tmp_path))


def test_a_dataset_whose_utterances_are_all_too_long_is_refused_with_what_fits(
    webdataset: Path, tmp_path: Path
) -> None:
    # 8 frames of 80 samples: 0.04 s, shorter than any utterance.
    with pytest.raises(InvalidInput, match=r"none of the dataset's 12 utterances.*0\.04 s"):
        train_asr(asr_config(sequence_length=8), job_paths(webdataset, tmp_path))
