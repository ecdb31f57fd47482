"""`commonlab dataset push` against a live facility: over HTTP in several resumable chunks,
and by the local fast path (a copy into the upload's part file) when the CLI shares the
facility's file system; both give the same signed version, and unchanged files are not sent."""

from __future__ import annotations

import os

import pytest

from commonlab.cli import artifacts_cmd
from commonlab.cli.main import main
from tests.helpers import http_client


def cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"commonlab {' '.join(args)} exited {exc.code}"


def test_push_over_http_and_by_the_local_path(live, tmp_path, monkeypatch):
    from commonlab.cli import digest_cache

    # No digest remembered from an earlier push is trusted here (see the cache's own test).
    monkeypatch.setattr(digest_cache, "RACY_NS", 1 << 62)
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
    hashed: list[str] = []
    real_digest = artifacts_cmd._digest

    def digest_spy(path, bars):
        hashed.append(path.name)
        return real_digest(path, bars)

    monkeypatch.setattr(artifacts_cmd, "_digest", digest_spy)

    # Over HTTP only: 64 KiB chunks on this facility, so a.bin takes five PUTs.
    cli("dataset", "push", str(folder), "--repo", "lab/over-http", "--no-local")
    assert copies == [] and sorted(hashed) == ["a.bin", "b.bin", "empty"]
    # The local path: the CLI runs on the facility's machine, so it copies into part files,
    # and files new to the repository are hashed once, by the facility.
    hashed.clear()
    cli("dataset", "push", str(folder), "--repo", "lab/local")
    assert sorted(copies) == [70_000, 300_000] and hashed == []

    api = http_client(base_url=live.url)
    over_http = api.get("/api/v1/artifacts/datasets/lab/over-http/versions/1").json()
    local = api.get("/api/v1/artifacts/datasets/lab/local/versions/1").json()
    assert [(f["path"], f["sha256"]) for f in over_http["files"]] == [
        (f["path"], f["sha256"]) for f in local["files"]
    ]
    for f in local["files"]:
        got = api.get(f"/api/v1/artifacts/datasets/lab/local/versions/1/files/{f['path']}")
        assert got.content == files[f["path"]]

    # A second version that changes one file sends only that file.
    # Both files have sizes the repository holds, so the CLI hashes them first.
    (folder / "shards" / "b.bin").write_bytes(os.urandom(70_000))
    copies.clear()
    cli("dataset", "push", str(folder), "--repo", "lab/local")
    assert copies == [70_000] and sorted(hashed) == ["a.bin", "b.bin"]


def _push_fails(*args: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 1


def test_where_the_copy_is_not_possible_the_cli_hashes_and_checks_the_facilitys_digest(
    live, tmp_path, monkeypatch, capsys
):
    """A part file this CLI may not write (the facility on another machine): the new file
    goes over HTTP, and the digest the facility computed must be the one hashed here."""
    folder = tmp_path / "data"
    folder.mkdir()
    data = os.urandom(200_000)
    (folder / "a.bin").write_bytes(data)
    monkeypatch.setattr(artifacts_cmd, "_copy_local", lambda *a, **k: None)
    cli("dataset", "push", str(folder), "--repo", "lab/remote")
    api = http_client(base_url=live.url)
    got = api.get("/api/v1/artifacts/datasets/lab/remote/versions/1/files/a.bin")
    assert got.content == data

    (folder / "b.bin").write_bytes(os.urandom(123_456))
    real_digest = artifacts_cmd._digest
    monkeypatch.setattr(
        artifacts_cmd,
        "_digest",
        lambda p, bars: {
            **real_digest(p, bars),
            **({"blake3": "0" * 64} if p.name == "b.bin" else {}),
        },
    )
    _push_fails("dataset", "push", str(folder), "--repo", "lab/remote")
    assert "not this file's" in capsys.readouterr().err
    assert api.get("/api/v1/artifacts/datasets/lab/remote").json()["latest"] == 1


def test_a_file_that_changes_while_it_is_copied_in_is_refused(live, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "growing.log").write_bytes(b"x" * 100_000)
    real_copy = artifacts_cmd._copy_local

    def copy_then_append(path, *args, **kwargs):
        copied = real_copy(path, *args, **kwargs)
        with path.open("ab") as fh:
            fh.write(b"more")
        return copied

    monkeypatch.setattr(artifacts_cmd, "_copy_local", copy_then_append)
    _push_fails("dataset", "push", str(folder), "--repo", "lab/moving")
    assert "changed while it was being pushed" in capsys.readouterr().err
    api = http_client(base_url=live.url)
    assert api.get("/api/v1/artifacts/datasets/lab/moving").json()["latest"] is None


def test_files_unchanged_since_the_last_push_are_not_hashed_again(live, tmp_path, monkeypatch):
    """The CLI keeps each pushed file's BLAKE3 in .commonlab/digests.json, keyed by its
    stat: an unchanged file is declared by it (held: nothing hashed, nothing sent), a
    changed one is not trusted, nor is one changed within the clock's racy window."""
    from commonlab.cli import digest_cache

    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (folder / name).write_bytes(os.urandom(50_000))
    hashed, copied = [], []
    real_digest, real_copy = artifacts_cmd._digest, artifacts_cmd._copy_local
    monkeypatch.setattr(artifacts_cmd, "_digest",
                        lambda p, bars: hashed.append(p.name) or real_digest(p, bars))  # fmt: skip
    monkeypatch.setattr(artifacts_cmd, "_copy_local",
                        lambda p, *a: copied.append(p.name) or real_copy(p, *a))  # fmt: skip

    # A window wider than any push takes here, so "just written" does not depend on how
    # busy the machine is: the files stay inside it, and the next push hashes them again.
    monkeypatch.setattr(digest_cache, "RACY_NS", 600 * 1_000_000_000)
    cli("dataset", "push", str(folder), "--repo", "lab/cached")
    assert (folder / ".commonlab" / "digests.json").is_file()
    hashed.clear()
    cli("dataset", "push", str(folder), "--repo", "lab/cached")
    assert sorted(hashed) == ["a.bin", "b.bin", "c.bin"]

    monkeypatch.setattr(digest_cache, "RACY_NS", 0)
    cli("dataset", "push", str(folder), "--repo", "lab/cached")  # records trusted entries
    (folder / "b.bin").write_bytes(os.urandom(50_000))  # same size, new bytes
    hashed.clear()
    copied.clear()
    cli("dataset", "push", str(folder), "--repo", "lab/cached")
    assert hashed == ["b.bin"] and copied == ["b.bin"]
    api = http_client(base_url=live.url)
    latest = api.get("/api/v1/artifacts/datasets/lab/cached").json()["latest"]
    got = api.get(f"/api/v1/artifacts/datasets/lab/cached/versions/{latest}/files/b.bin")
    assert got.content == (folder / "b.bin").read_bytes()


def test_the_digest_cache_trusts_only_an_unchanged_stat(tmp_path, monkeypatch):
    from commonlab.cli import digest_cache

    monkeypatch.setattr(digest_cache, "RACY_NS", 0)
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    cache = digest_cache.DigestCache(tmp_path / ".commonlab")
    cache.put("x.bin", f.stat(), "b" * 64)
    assert cache.get("x.bin", f.stat()) == "b" * 64
    cache.save(keep={"x.bin"})
    assert digest_cache.DigestCache(tmp_path / ".commonlab").get("x.bin", f.stat()) == "b" * 64
    f.write_bytes(b"abd")
    assert cache.get("x.bin", f.stat()) is None
    (tmp_path / ".commonlab" / "digests.json").write_text("{not json")
    assert digest_cache.DigestCache(tmp_path / ".commonlab").get("x.bin", f.stat()) is None
    # A folder that cannot be written keeps no cache, and says nothing.
    digest_cache.DigestCache(tmp_path / "missing" / "deeper").save(keep={"x.bin"})


def test_a_refused_pull_says_why_without_a_progress_bar(live, tmp_path, monkeypatch, capsys):
    """A CL-3 model's files never leave: the pull stops at the refusal, before any bar."""
    from tests.artifacts.test_api import cleared, make_repo, push, safetensors_bytes

    api = http_client(base_url=live.url, timeout=30)
    _, h = cleared(api, {"Authorization": f"Bearer {live.token}"}, 3)
    repo = make_repo(api, h, kind="model", name="frontier", visibility="private", level=3)
    assert push(api, h, repo, {"w.safetensors": safetensors_bytes()}).status_code == 201
    monkeypatch.setenv("COMMONLAB_TOKEN", h["Authorization"].split()[1])
    capsys.readouterr()
    with pytest.raises(SystemExit) as failed:
        main(["model", "pull", repo.removeprefix("models/") + "@1", str(tmp_path / "copy")])
    assert failed.value.code == 1
    out, err = capsys.readouterr()
    assert "never served for download" in err and "HTTP 403" in err
    assert "downloading" not in out + err
