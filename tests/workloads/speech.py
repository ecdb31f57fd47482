"""Small speech datasets for tests, spoken by eSpeak NG (Debian's `espeak-ng`, installed by
scripts/test): a dozen short English and Kiswahili utterances with their transcripts, laid
out as a WebDataset shard (`key.wav`/`key.flac` + `key.txt`) or as a Parquet file (an
audio column of encoded files + a text column), the two forms a speech dataset arrives in.

The synthesized audio is 22.05 kHz, so the runtime's resampling to 16 kHz is exercised."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

__all__ = ["UTTERANCES", "Utterance", "espeak", "write_parquet", "write_webdataset"]

ESPEAK = "espeak-ng"
# Words per minute: faster than the default 175, so the clips (and the tests) stay short.
SPEED = 220


@dataclass(frozen=True)
class Utterance:
    key: str
    voice: str  # an espeak-ng voice: "en", "sw" (Kiswahili)
    text: str


UTTERANCES = [
    Utterance("en-000", "en", "the cat sat"),
    Utterance("en-001", "en", "a red boat"),
    Utterance("en-002", "en", "open the door"),
    Utterance("en-003", "en", "good morning"),
    Utterance("en-004", "en", "it is cold"),
    Utterance("en-005", "en", "read a book"),
    Utterance("en-006", "en", "the sun is hot"),
    Utterance("en-007", "en", "we can go"),
    Utterance("sw-000", "sw", "habari yako"),
    Utterance("sw-001", "sw", "asante sana"),
    Utterance("sw-002", "sw", "karibu nyumbani"),
    Utterance("sw-003", "sw", "maji ni baridi"),
]


def espeak(text: str, *, voice: str = "en") -> bytes:
    """`text` spoken by espeak-ng, as the bytes of a WAV file; skips the test where
    espeak-ng is not installed."""
    binary = shutil.which(ESPEAK)
    if binary is None:
        missing = "espeak-ng is not installed (scripts/test installs it: apt-get install espeak-ng)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)  # under CI a missing component fails, as PostgreSQL's does
        pytest.skip(missing)
    result = subprocess.run(
        [binary, "-v", voice, "-s", str(SPEED), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return result.stdout


def _flac(wav: bytes) -> bytes:
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(
    folder: Path, utterances: list[Utterance] = UTTERANCES, *, text_member: str = "txt"
) -> Path:
    """One WebDataset shard in `folder`: `key.wav` (every other one `key.flac`, so both
    decoders run) and `key.<text_member>` per utterance."""
    folder.mkdir(parents=True, exist_ok=True)
    shard = folder / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for index, utterance in enumerate(utterances):
            wav = espeak(utterance.text, voice=utterance.voice)
            if index % 2:
                _add(tar, f"{utterance.key}.flac", _flac(wav))
            else:
                _add(tar, f"{utterance.key}.wav", wav)
            _add(tar, f"{utterance.key}.{text_member}", utterance.text.encode())
    return folder


def write_parquet(
    folder: Path,
    utterances: list[Utterance] = UTTERANCES,
    *,
    audio_struct: bool = False,
    audio_column: str = "audio",
) -> Path:
    """One Parquet file in `folder` with an audio column (encoded WAV bytes, or with
    `audio_struct` Hugging Face datasets' Audio struct `{"bytes", "path"}`) and a text
    column."""
    folder.mkdir(parents=True, exist_ok=True)
    audio: list[object] = []
    for utterance in utterances:
        wav = espeak(utterance.text, voice=utterance.voice)
        audio.append({"bytes": wav, "path": f"{utterance.key}.wav"} if audio_struct else wav)
    table = pa.table(
        {
            "id": [u.key for u in utterances],
            audio_column: audio,
            "text": [u.text for u in utterances],
        }
    )
    pq.write_table(table, folder / "train.parquet")
    return folder
