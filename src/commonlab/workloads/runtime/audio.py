"""Audio as a speech model reads it: a record's encoded audio (WAV or FLAC bytes, as a
WebDataset member or a Parquet cell) decoded to float32 mono samples at the model's rate.

Decoding is `soundfile`'s (libsndfile); resampling is a plain anti-aliased interpolation
in torch, good enough for training input and free of a torchaudio/ffmpeg dependency."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping

import numpy as np
import soundfile
import torch

from commonlab.errors import InvalidInput

__all__ = ["SAMPLING_RATE", "audio_bytes", "audio_length", "decode_audio", "resample"]

# What wav2vec2's feature extractor and every published checkpoint expect.
SAMPLING_RATE = 16_000


def audio_bytes(value: object, *, key: str) -> bytes:
    """The encoded file in a record's audio cell: bytes as such (a WebDataset member, a
    Parquet binary column), or Hugging Face datasets' Audio struct `{"bytes", "path"}`."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping):
        embedded = value.get("bytes")
        if isinstance(embedded, bytes | bytearray | memoryview) and len(embedded) > 0:
            return bytes(embedded)
        # A struct that only names a file outside the dataset cannot be read in a job,
        # which sees nothing but the dataset's own files.
        path = value.get("path")
        raise InvalidInput(
            f"record {key}: the audio struct holds no embedded bytes"
            + (f" (only the path {path!r})" if path else "")
            + "; store the encoded WAV/FLAC file in its 'bytes' field"
        )
    raise InvalidInput(
        f"record {key}: the audio column holds {type(value).__name__}, not an encoded "
        "WAV/FLAC file (bytes, or a struct with a 'bytes' field)"
    )


def resample(samples: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    """`samples` (1-D float32) at `to_rate`. Bilinear interpolation over a 1-row image is
    the one torch interpolation with an anti-aliasing filter, which downsampling needs."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    length = _resampled_length(samples.size, from_rate=from_rate, to_rate=to_rate)
    image = torch.from_numpy(np.ascontiguousarray(samples)).view(1, 1, 1, -1)
    out = torch.nn.functional.interpolate(
        image, size=(1, length), mode="bilinear", antialias=True, align_corners=False
    )
    return out.view(-1).numpy().astype(np.float32, copy=False)


def audio_length(value: object, *, key: str, sampling_rate: int = SAMPLING_RATE) -> int:
    """How many samples `decode_audio` makes of a record's audio, read from the file's
    header alone: cheap enough to filter records by duration on every pass."""
    data = audio_bytes(value, key=key)
    with _readable(data, key=key):
        info = soundfile.info(io.BytesIO(data))
    rate = int(info.samplerate)
    return _resampled_length(int(info.frames), from_rate=rate, to_rate=sampling_rate)


def decode_audio(value: object, *, key: str, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A record's audio cell as float32 mono samples at `sampling_rate`; channels are
    averaged. Raises InvalidInput naming the record when the bytes are no audio file
    libsndfile reads (WAV, FLAC, OGG)."""
    data = audio_bytes(value, key=key)
    with _readable(data, key=key):
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if samples.shape[0] == 0:
        raise InvalidInput(f"record {key}: its audio holds no samples")
    mono = samples.mean(axis=1, dtype=np.float32)
    return resample(mono, from_rate=int(rate), to_rate=sampling_rate)


def _resampled_length(samples: int, *, from_rate: int, to_rate: int) -> int:
    if from_rate == to_rate or samples == 0:
        return samples
    return max(1, round(samples * to_rate / from_rate))


@contextlib.contextmanager
def _readable(data: bytes, *, key: str) -> Iterator[None]:
    """libsndfile's refusal as InvalidInput naming the record."""
    try:
        yield
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # libsndfile's own words, without the repr of the in-memory file.
        reason = getattr(exc, "error_string", None) or str(exc)
        raise InvalidInput(
            f"record {key}: its audio ({len(data)} bytes) is not a WAV or FLAC file "
            f"soundfile can decode: {reason}"
        ) from exc
