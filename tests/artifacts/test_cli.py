"""`commonlab dataset push` against a live facility: over HTTP in several resumable chunks,
and by the local fast path (a copy into the upload's part file) when the CLI shares the
facility's file system; both give the same signed version, and unchanged files are not sent."""

from __future__ import annotations

import os

import httpx

from commonlab.cli import artifacts_cmd
from commonlab.cli.main import main


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"commonlab {' '.join(args)} exited {exc.code}"


def test_push_over_http_and_by_the_local_path(live, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    (folder / "shards").mkdir(parents=True)
    files = {"a.bin": os.urandom(300_000), "shards/b.bin": os.urandom(70_000), "empty": b""}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    copies: list[int] = []
    real_copy = artifacts_cmd._copy_local

    def spy(*args, **kwargs):
        copied = real_copy(*args, **kwargs)
        copies.append(copied)
        return copied

    monkeypatch.setattr(artifacts_cmd, "_copy_local", spy)

    # Over HTTP only: 64 KiB chunks on this facility, so a.bin takes five PUTs.
    cli("dataset", "push", str(folder), "--repo", "lab/over-http", "--no-local")
    assert copies == []
    # The local path: the CLI runs on the facility's machine, so it copies into part files.
    cli("dataset", "push", str(folder), "--repo", "lab/local")
    assert sorted(copies) == [70_000, 300_000]

    api = httpx.Client(base_url=live.url)
    over_http = api.get("/api/v1/artifacts/datasets/lab/over-http/versions/1").json()
    local = api.get("/api/v1/artifacts/datasets/lab/local/versions/1").json()
    assert [(f["path"], f["sha256"]) for f in over_http["files"]] == [
        (f["path"], f["sha256"]) for f in local["files"]
    ]
    for f in local["files"]:
        got = api.get(f"/api/v1/artifacts/datasets/lab/local/versions/1/files/{f['path']}")
        assert got.content == files[f["path"]]

    # A second version that changes one file sends only that file.
    (folder / "shards" / "b.bin").write_bytes(os.urandom(70_000))
    copies.clear()
    cli("dataset", "push", str(folder), "--repo", "lab/local")
    assert copies == [70_000]
