"""Pushing files through the artifacts API the way the CLI does: upload, then commit."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import blake3


def digests(data: bytes) -> dict[str, Any]:
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
    }


def upload(client, headers, repo: str, data: bytes) -> str:
    """Upload one file (in one chunk); returns its BLAKE3."""
    d = digests(data)
    response = client.post(f"/api/v1/artifacts/{repo}/uploads", json=d, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    if body["state"] == "open":
        response = client.put(
            f"/api/v1/artifacts/uploads/{body['id']}",
            params={"offset": 0},
            content=data,
            headers={**headers, "content-type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "complete"
    return d["blake3"]


def push(client, headers, repo: str, files: dict[str, bytes], **fields: Any):
    entries = [{"path": path, "blake3": upload(client, headers, repo, data)}
               for path, data in files.items()]  # fmt: skip
    return client.post(
        f"/api/v1/artifacts/{repo}/versions", json={"files": entries, **fields}, headers=headers
    )


def safetensors_bytes(metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, Any] = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(16)
