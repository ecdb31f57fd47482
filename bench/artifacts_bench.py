"""Artifacts benchmarks: ingest throughput of `commonlab dataset push` against `cp` of the
same files in the same round, and bytes stored for ten versions that each change 1% of a
dataset (content addressing should store close to the changed bytes, not ten copies).

    .venv/bin/python bench/artifacts_bench.py --ingest-mb 2048 --dedup-mb 256

The facility runs in this process (uvicorn, SQLite, the default 64 MiB upload chunks); the
push runs as the real CLI in a child process, as a researcher would run it. A small push
warms the facility first (its first publish imports `mlcroissant`, seconds of one-off work a
running facility has long done); that push is timed and reported on its own.

Each ingest round makes fresh random files (so nothing is already stored), warms the page
cache with them, then times `cp -r` + fsync of the copies, `commonlab dataset push` (which
takes the shared-file-system path, as on a laptop or a login node), and `push --no-local`
into a second facility (every byte over HTTP, as from another machine). The median of the
rounds' push / cp ratios is the figure; every round is printed, since a shared machine moves
single rounds by a factor of two.

Before the pushes, the same files go through the facility's ingest alone (`--store-rounds`),
without the CLI's start and its HTTP requests, beside `cp -r` + fsync: on a shared file
system, each file copied in the kernel into an upload's part file (as the CLI copies it: one
copy at a time, two files in flight), checked (BLAKE3 and SHA-256) and placed, one
`make_durable` at the end as a publish does; and the HTTP path, each file's bytes handed to
`ObjectStore.append` in the 256 KiB pieces a request body arrives in, 64 MiB a request, with
the way batches were hashed and written before issue 20 (`_SerialWriterBefore`, kept here as
the baseline) and now.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from commonlab.artifacts import store as store_module
from commonlab.artifacts.store import ObjectStore, StoredObject


def _files(root: Path, total_mb: int, count: int) -> list[Path]:
    root.mkdir(parents=True)
    size = total_mb * (1 << 20) // count
    paths = []
    for i in range(count):
        path = root / f"shard-{i:04d}.bin"
        with path.open("wb") as fh:
            left = size
            while left:
                n = min(left, 8 << 20)
                fh.write(os.urandom(n))
                left -= n
        paths.append(path)
    return paths


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _serve(home: Path):
    import uvicorn

    from commonlab.app import create_app
    from commonlab.config import Settings
    from commonlab.facility import open_facility
    from commonlab.identity.service import bootstrap_operator

    facility = open_facility(Settings(home=home))
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(facility), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", token, server, thread


def _push(url: str, token: str, folder: Path, repo: str, cfg: Path, *extra: str) -> float:
    env = {**os.environ, "COMMONLAB_URL": url, "COMMONLAB_TOKEN": token,
           "COMMONLAB_CLI_CONFIG": str(cfg), "TERM": "dumb"}  # fmt: skip
    cli = [sys.executable, "-m", "commonlab.cli", "dataset", "push", str(folder), "--repo", repo,
           *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _cp(src: Path, dest: Path) -> float:
    """`cp -r` and an fsync of the copies and their folder (a publish's durability)."""
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dest)], check=True)
    # A plain `sync` would also wait for whatever else this machine has written.
    subprocess.run(["sync", str(dest), *sorted(map(str, dest.iterdir()))], check=True)
    took = time.perf_counter() - start
    shutil.rmtree(dest)
    return took


def _store_ingest(files: list[Path], root: Path) -> float:
    """The facility's side of a push on a shared file system, timed: each file copied into an
    upload's part file as the CLI copies it, finished (hashed and placed), all made durable."""
    store = ObjectStore(root)
    copying = threading.Lock()  # the CLI copies one file at a time, two files in flight

    def one(path: Path) -> StoredObject:
        upload = secrets.token_urlsafe(18)
        store.begin_upload(upload)
        size = path.stat().st_size
        with copying, path.open("rb") as src, store.part_path(upload).open("r+b") as out:
            offset = 0
            while offset < size:
                offset += os.copy_file_range(src.fileno(), out.fileno(), size - offset, offset)
        stored = store.finish_upload(upload, expected_sha256=None)
        assert stored is not None
        return stored

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as senders:
        stored = list(senders.map(one, files))
    store.make_durable([s.blake3 for s in stored])
    took = time.perf_counter() - start
    shutil.rmtree(root)
    return took


class _SerialWriterBefore:
    """How an upload's batches were hashed and written before issue 20 (the baseline): in
    turns with fetching the next one, SHA-256 in a helper thread started per batch while the
    request thread computed BLAKE3 and wrote."""

    def __init__(self, hashing, fh) -> None:
        self._hashing, self._fh = hashing, fh

    def submit(self, pieces: list[bytes]) -> None:
        def sha() -> None:
            for piece in pieces:
                self._hashing.sha.update(piece)

        helper = threading.Thread(target=sha, name="sha256")
        helper.start()
        try:
            for piece in pieces:
                self._hashing.b3.update(piece)
                self._fh.write(piece)
                self._hashing.size += len(piece)
        finally:
            helper.join()

    def close(self) -> None:
        pass


def _http_ingest(files: list[Path], root: Path, request_bytes: int = 64 << 20) -> float:
    """The facility's side of a push over HTTP, timed without the socket: each file's bytes
    reach `ObjectStore.append` in the pieces a request body arrives in (256 KiB, read from the
    file here where uvicorn reads them from the socket), 64 MiB a request, then finished."""
    store = ObjectStore(root)

    def pieces(path: Path, start: int, end: int):
        with path.open("rb") as fh:
            fh.seek(start)
            while start < end and (piece := fh.read(min(256 << 10, end - start))):
                start += len(piece)
                yield piece

    def one(path: Path) -> StoredObject:
        upload = secrets.token_urlsafe(18)
        store.begin_upload(upload)
        size = path.stat().st_size
        for start in range(0, size, request_bytes):
            end = min(start + request_bytes, size)
            store.append(upload, start, pieces(path, start, end), limit=size)
        stored = store.finish_upload(upload, expected_sha256=None)
        assert stored is not None
        return stored

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as senders:  # the CLI's two files in flight
        stored = list(senders.map(one, files))
    store.make_durable([s.blake3 for s in stored])
    took = time.perf_counter() - start
    shutil.rmtree(root)
    return took


def bench_store(work: Path, mb: int, count: int, rounds: int) -> None:
    print(f"facility ingest alone, {mb} MiB in {count} files, {rounds} rounds (page cache warm)")
    print("  round   cp -r + fsync       shared file system         HTTP path, before (baseline)"
          "   HTTP path, now")  # fmt: skip
    ratios: dict[str, list[float]] = {"shared": [], "before": [], "now": []}
    for round_ in range(1, rounds + 1):
        src = work / "store-src"
        files = _files(src, mb, count)
        subprocess.run(["sync"], check=True)
        subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)
        cp_s = _cp(src, work / "store-copy")
        shared_s = _store_ingest(files, work / "store-shared")
        current = store_module._HashingWriter
        store_module._HashingWriter = _SerialWriterBefore
        try:
            before_s = _http_ingest(files, work / "store-http-before")
        finally:
            store_module._HashingWriter = current
        now_s = _http_ingest(files, work / "store-http-now")
        shutil.rmtree(src)
        cells = [f"{t:6.2f} s {mb / t:5.0f} MiB/s" for t in (cp_s, shared_s, before_s, now_s)]
        for key, took in (("shared", shared_s), ("before", before_s), ("now", now_s)):
            ratios[key].append(cp_s / took)
        print(f"  {round_:>5} {cells[0]}  {cells[1]} {ratios['shared'][-1]:4.2f}x"
              f"  {cells[2]} {ratios['before'][-1]:4.2f}x"
              f"  {cells[3]} {ratios['now'][-1]:4.2f}x")  # fmt: skip
    median = {key: statistics.median(values) for key, values in ratios.items()}
    print(f"  ingest / cp, median of the rounds: shared file system {median['shared']:.2f}x "
          f"(target >= 0.7x); HTTP path before {median['before']:.2f}x, now {median['now']:.2f}x "
          f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-mb", type=int, default=2048)
    parser.add_argument("--ingest-files", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dedup-mb", type=int, default=512)
    parser.add_argument("--dedup-files", type=int, default=100)
    parser.add_argument("--store-rounds", type=int, default=3)
    parser.add_argument("--store-only", action="store_true", help="only the facility's ingest")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="artifacts-bench-") as tmp:
        work = Path(tmp)
        if args.store_rounds:
            bench_store(work, args.ingest_mb, args.ingest_files, args.store_rounds)
        if args.store_only:
            return
        url, token, server, thread = _serve(work / "home")
        objects = work / "home" / "objects"

        # 0. Warm-up: a fresh facility's first publish imports mlcroissant (and torch).
        warm = work / "warm"
        _files(warm, 1, 1)
        warm_s = _push(url, token, warm, "bench/warm", work / "cli.toml")
        print(f"warm-up: first publish of a fresh facility (1 MiB) {warm_s:.2f} s")

        # 1. Ingest: push versus cp of the same files in the same round, page cache warm for
        # both, each round on fresh random files (so no round finds the bytes already stored).
        # --no-local pushes the same files over HTTP only, as a client on another machine
        # would, to a second facility (so nothing there is held already either).
        http_url, http_token, http_server, http_thread = _serve(work / "home-http")
        _push(http_url, http_token, warm, "bench/warm", work / "cli.toml")
        mb = args.ingest_mb
        print(f"ingest {mb} MiB in {args.ingest_files} files, {args.rounds} rounds")
        print("  round   cp -r + fsync       push (shared FS)          push --no-local (HTTP)")
        ratios, http_ratios = [], []
        for round_ in range(1, args.rounds + 1):
            src = work / "ingest"
            _files(src, args.ingest_mb, args.ingest_files)
            subprocess.run(["sync"], check=True)
            subprocess.run(["cat", *map(str, src.iterdir())], stdout=subprocess.DEVNULL, check=True)
            start = time.perf_counter()
            subprocess.run(["cp", "-r", str(src), str(work / "copy")], check=True)
            # fsync the copies and their folder, as a publish fsyncs its objects: a plain
            # `sync` would also wait for whatever else this machine has written.
            copies = sorted(map(str, (work / "copy").iterdir()))
            subprocess.run(["sync", str(work / "copy"), *copies], check=True)
            cp_s = time.perf_counter() - start
            shutil.rmtree(work / "copy")
            push_s = _push(url, token, src, f"bench/ingest-{round_}", work / "cli.toml")
            http_s = _push(http_url, http_token, src, f"bench/ingest-{round_}", work / "cli.toml",
                           "--no-local")  # fmt: skip
            shutil.rmtree(src)
            ratios.append(cp_s / push_s)
            http_ratios.append(cp_s / http_s)
            cells = [f"{t:6.2f} s {mb / t:5.0f} MiB/s" for t in (cp_s, push_s, http_s)]
            print(f"  {round_:>5} {cells[0]}  {cells[1]} {ratios[-1]:4.2f}x"
                  f"  {cells[2]} {http_ratios[-1]:4.2f}x")  # fmt: skip
        local, remote = statistics.median(ratios), statistics.median(http_ratios)
        print(f"  push / cp throughput, median of the rounds: {local:.2f}x (target >= 0.7x); "
              f"over HTTP only: {remote:.2f}x")  # fmt: skip
        http_server.should_exit = True
        http_thread.join(timeout=10)

        # 2. Ten versions, each rewriting 1% of the dataset.
        before = _du(objects)
        data = work / "dedup"
        shards = _files(data, args.dedup_mb, args.dedup_files)
        dataset = _du(data)
        changed = 0
        per_push = []
        for version in range(10):
            if version:
                victim = shards[(version * 7) % len(shards)]
                size = victim.stat().st_size
                victim.write_bytes(os.urandom(size))
                changed += size
            per_push.append(_push(url, token, data, "bench/dedup", work / "cli.toml"))
        stored = _du(objects) - before
        ideal = dataset + changed
        print(f"ten versions of a {dataset / (1 << 20):.0f} MiB dataset, each changing 1%")
        print(f"  ten full copies        {10 * dataset / (1 << 20):9.1f} MiB")
        print(f"  first + changed bytes  {ideal / (1 << 20):9.1f} MiB")
        print(f"  stored                 {stored / (1 << 20):9.1f} MiB  "
              f"({stored / ideal:.3f}x the changed bytes)")  # fmt: skip
        print(f"  push of an unchanged-but-1% version: {min(per_push[1:]):.2f} s")
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
