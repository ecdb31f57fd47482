"""Tiny real media for the record tests, made here rather than downloaded: a PNG written with
zlib and struct, a WAV with the `wave` module, a WebM (VP8) encoded by PyAV's bundled FFmpeg,
WebDataset shards with tarfile, Parquet with pyarrow."""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from typing import Any

from commonlab.demo_media import shard  # noqa: F401  (the demo writes its shards so too)


def png(width: int = 8, height: int = 6, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 0.5, rate: int = 8000, hz: float = 440.0) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(seconds * rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate)))
                for i in range(frames)
            )
        )
    return buffer.getvalue()


def webm(frames: int = 12, size: int = 32, fps: int = 12) -> bytes:
    """A short VP8 WebM: a real video Chromium plays. Needs PyAV (`av`, in the test extra)."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.zeros((size, size, 3), dtype=np.uint8)
            image[:, : (i + 1) * size // frames] = (40, 160, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def parquet(rows: list[dict[str, Any]], *, row_group_size: int = 2) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer, row_group_size=row_group_size)
    return buffer.getvalue()
