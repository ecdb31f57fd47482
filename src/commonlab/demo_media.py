"""The file formats the demo writes, made with the standard library alone (no imaging or audio
package is needed to start a demo): PNG images, WAV audio (a tone, or espeak-ng's speech where
it is installed), WebDataset shards and JSON Lines."""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
import subprocess
import tarfile
import wave
import zlib
from typing import Any

__all__ = ["jsonl", "png", "shard", "speech", "tone"]


def png(stripes: list[tuple[int, int, int]], *, width: int = 48, stripe_height: int = 8) -> bytes:
    """A PNG of horizontal stripes, written with zlib and struct (no imaging library)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    rows = b"".join(
        b"\x00" + bytes(colour) * width for colour in stripes for _ in range(stripe_height)
    )
    header = struct.pack(">IIBBBBB", width, stripe_height * len(stripes), 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def tone(*, hz: float, seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV of a pure tone."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(6000 * math.sin(2 * math.pi * hz * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return buffer.getvalue()


def speech(text: str) -> bytes | None:
    """`text` spoken by espeak-ng's Swahili voice as WAV, or None without espeak-ng."""
    program = shutil.which("espeak-ng")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "-v", "sw", "-s", "150", "--stdout", text],
            capture_output=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.stdout.startswith(b"RIFF") else None


def shard(samples: list[dict[str, Any]]) -> bytes:
    """A WebDataset tar: each sample's members as `<key>.<ext>`, in order, with a fixed
    modification time so the same samples make the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            for ext, value in sample.items():
                if ext == "__key__":
                    continue
                if isinstance(value, dict):
                    value = json.dumps(value).encode()
                elif isinstance(value, str):
                    value = value.encode()
                info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buffer.getvalue()


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
