"""The content-addressed object store: every file stored once, named by its BLAKE3 digest,
with its SHA-256 kept beside it for tools that speak only SHA-256.

Objects live under `<root>/<b3[:2]>/<b3[2:4]>/<b3>`; a write goes to a temporary file in the
same file system, is fsynced and renamed into place, so a reader never sees half an object
and two writers of the same bytes leave one. Uploads are resumable: an upload's bytes grow
in `<root>/uploads/<id>.part` until it is complete, and only then become an object. Nothing
here touches the database: the service decides what is referenced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import blake3

__all__ = [
    "CHUNK",
    "ObjectStore",
    "StoredObject",
    "UploadOffsetMismatch",
    "derived_path",
    "hash_file",
]

CHUNK = 1 << 20
# Pieces of a request body hashed and written together (two digests in two threads).
_BATCH = 8 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DERIVED = "indexes"
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def derived_path(object_path: Path, suffix: str) -> Path | None:
    """Where a file derived from a stored object is kept (a JSONL file's line index,
    `.lines`): `<root>/indexes/<b3[:2]>/<b3><suffix>`, named by the object's address so it is
    computed once and removed with the object. None for a path outside the store's layout
    (`<root>/<b3[:2]>/<b3[2:4]>/<b3>`)."""
    b3 = object_path.name
    parent = object_path.parent
    if not _HEX64.match(b3) or parent.name != b3[2:4] or parent.parent.name != b3[:2]:
        return None
    return parent.parent.parent / _DERIVED / b3[:2] / f"{b3}{suffix}"


@dataclass(frozen=True)
class StoredObject:
    """An object's address (BLAKE3), its SHA-256 and its size in bytes."""

    blake3: str
    sha256: str
    size: int


class UploadOffsetMismatch(Exception):
    """A chunk was sent for an offset the upload is not at; `received` says where it is."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the upload holds {received} bytes")
        self.received = received


def hash_file(path: Path) -> StoredObject:
    """BLAKE3, SHA-256 and size of a file, in one pass over its mapped pages.

    SHA-256 (about 1.3 GiB/s on one core) runs in a helper thread while BLAKE3 runs in this
    one; both release the GIL, and a mapping needs no copy of the bytes into Python.
    """
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return StoredObject(blake3.blake3().hexdigest(), hashlib.sha256().hexdigest(), 0)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                sha = hashlib.sha256()
                helper = threading.Thread(target=sha.update, args=(view,), name="sha256")
                helper.start()
                try:
                    b3 = blake3.blake3(view).hexdigest()
                finally:
                    helper.join()
                return StoredObject(b3, sha.hexdigest(), size)
            finally:
                view.release()


class _Hashing:
    """Both digests of a byte stream as it passes through."""

    def __init__(self) -> None:
        self.b3 = blake3.blake3()
        self.sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.b3.update(chunk)
        self.sha.update(chunk)
        self.size += len(chunk)

    def result(self) -> StoredObject:
        return StoredObject(self.b3.hexdigest(), self.sha.hexdigest(), self.size)


class _HashingWriter:
    """Hashes and writes an upload's batches in two helper threads, SHA-256 (the slower digest)
    in one and BLAKE3 and the write in the other, while the caller fetches the next batch: the
    bytes are hashed once, as they are written, and receiving, hashing and writing overlap on
    both cores (both digests release the GIL on large buffers). One batch is in flight at a
    time, so at most two are held in memory."""

    def __init__(self, hashing: _Hashing, fh: BinaryIO) -> None:
        self._hashing = hashing
        self._fh = fh
        self._helpers = ThreadPoolExecutor(2, thread_name_prefix="ingest")
        self._pending: list[Future[None]] = []

    def submit(self, pieces: list[bytes]) -> None:
        self.wait()
        self._pending = [
            self._helpers.submit(self._sha, pieces),
            self._helpers.submit(self._b3_and_write, pieces),
        ]

    def wait(self) -> None:
        """Until the batch in flight is hashed and written; raises what its writing raised."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._helpers.shutdown()

    def _sha(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._hashing.sha.update(piece)

    def _b3_and_write(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._hashing.b3.update(piece)
            self._fh.write(piece)
            self._hashing.size += len(piece)


class ObjectStore:
    """Objects on a POSIX path (`$COMMONLAB_HOME/objects`, or a shared file system)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._uploads = self.root / "uploads"
        for folder in (self.root, self._tmp, self._uploads):
            folder.mkdir(parents=True, exist_ok=True)
        self._gc_lock_path = self.root / ".gc.lock"
        self._gc_lock_path.touch(exist_ok=True)
        # Digests of uploads whose chunks arrived in order in this process: saves a re-read.
        self._running: dict[str, _Hashing] = {}
        self._running_lock = threading.Lock()
        # Writes placed objects to disk in the background (see `_write_back`).
        self._writeback = ThreadPoolExecutor(1, thread_name_prefix="writeback")

    # Reading ---------------------------------------------------------------------------------

    def path(self, b3: str) -> Path:
        if not _HEX64.match(b3):
            raise ValueError(f"not a BLAKE3 hex digest: {b3!r}")
        return self.root / b3[:2] / b3[2:4] / b3

    def exists(self, b3: str) -> bool:
        return self.path(b3).is_file()

    def holds(self, b3: str, size: int) -> bool:
        """The object is here, whole (a crash before it was made durable can leave it short)."""
        try:
            return self.path(b3).stat().st_size == size
        except FileNotFoundError:
            return False

    def open(self, b3: str) -> BinaryIO:
        return self.path(b3).open("rb")

    def iter_bytes(self, b3: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes [start, end) in chunks, never the whole file at once."""
        with self.open(b3) as fh:
            fh.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def all_objects(self) -> Iterator[str]:
        for first in self.root.iterdir():
            if len(first.name) != 2 or not first.is_dir():
                continue
            for second in first.iterdir():
                for item in second.iterdir():
                    if _HEX64.match(item.name):
                        yield item.name

    # Writing ---------------------------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes]) -> StoredObject:
        """Store a stream of bytes; returns its address. Existing bytes are not stored twice."""
        hashing = _Hashing()
        fd, tmp_name = _mkstemp(self._tmp)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    hashing.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            stored = hashing.result()
            self._place(tmp, stored.blake3, size=stored.size)
            self.make_durable([stored.blake3])
            return stored
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def put_file(self, path: Path) -> StoredObject:
        with path.open("rb") as fh:
            return self.put_stream(iter(lambda: fh.read(CHUNK), b""))

    def _place(self, tmp: Path, b3: str, *, size: int) -> bool:
        """Rename `tmp` into place; False when the same bytes are already here."""
        with self.shared():
            if self.holds(b3, size):
                return False  # deduplicated
            final = self.path(b3)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            return True

    def _write_back(self, path: Path) -> None:
        """Start writing a placed object to disk now, in a helper thread, so that the fsync a
        publish waits for (`make_durable`) finds it written: measured, a 2 GiB push spent its
        last second in that fsync when the disks were left to start at publish."""

        def fsync() -> None:
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        self._writeback.submit(fsync)

    def make_durable(self, addresses: Iterable[str]) -> None:
        """fsync objects and the folders that name them (cheap for those already on disk).

        Uploads are placed without it, so that the disks write a whole push at once, like
        `cp` then `sync`, instead of stalling on every file: a version is published only
        after its objects are durable, and an object a crash left short is replaced by the
        next upload of its bytes (see `holds`).
        """
        folders: set[Path] = set()
        for b3 in addresses:
            path = self.path(b3)
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.update((path.parent, path.parent.parent))
        for folder in sorted(folders, key=lambda f: -len(f.parts)):
            _fsync_dir(folder)
        if folders:
            _fsync_dir(self.root)

    # Resumable uploads -----------------------------------------------------------------------

    def _part(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self._uploads / f"{upload_id}.part"

    def begin_upload(self, upload_id: str) -> None:
        self._part(upload_id).touch(exist_ok=True)
        with self._running_lock:
            self._running[upload_id] = _Hashing()

    def part_path(self, upload_id: str) -> Path:
        """Where an upload's bytes grow: a client sharing this file system may write them here
        itself (the facility checks them when the upload is finished, as for any upload)."""
        return self._part(upload_id).absolute()

    def received(self, upload_id: str) -> int:
        try:
            return self._part(upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, upload_id: str, offset: int, chunks: Iterable[bytes], *, limit: int) -> int:
        """Append a chunk at `offset` (which must be where the upload is); returns the new size.

        Writing stops with ValueError past `limit` total bytes; what was received before the
        chunk stays, so the client resumes from `received()`.
        """
        part = self._part(upload_id)
        if not part.exists():
            raise FileNotFoundError(upload_id)
        with part.open("r+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            size = os.fstat(fh.fileno()).st_size
            if size != offset:
                raise UploadOffsetMismatch(size)
            with self._running_lock:
                running = self._running.get(upload_id)
                if running is not None and running.size != offset:
                    running = None
                    self._running.pop(upload_id, None)
            fh.seek(offset)
            written = offset
            batch: list[bytes] = []
            batched = 0
            writer = None if running is None else _HashingWriter(running, fh)
            try:
                for chunk in chunks:
                    if written + batched + len(chunk) > limit:
                        raise ValueError(f"more than the declared {limit} bytes")
                    if writer is None:
                        fh.write(chunk)
                        written += len(chunk)
                        continue
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= _BATCH:
                        writer.submit(batch)
                        written, batch, batched = written + batched, [], 0
                if writer is not None:
                    if batch:
                        writer.submit(batch)
                        written += batched
                    writer.close()
            except BaseException:
                # A chunk counts whole or not at all: cut back to where it started, once the
                # batch in flight has landed (whatever it raised, the upload is cut back).
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()
                fh.flush()
                fh.truncate(offset)
                with self._running_lock:
                    self._running.pop(upload_id, None)
                raise
            fh.flush()
            return written

    def finish_upload(
        self, upload_id: str, *, expected_sha256: str | None, expected_blake3: str | None = None
    ) -> StoredObject | None:
        """Turn a complete upload into an object (renamed; `make_durable` fsyncs it when a
        version takes it); the part file is gone.

        Both digests are computed here from the bytes on disk (or as they arrived); None, and
        the bytes discarded, when they do not have the declared SHA-256 or BLAKE3 (an upload
        that declared neither is stored under the digests its bytes have).
        """
        part = self._part(upload_id)
        with self._running_lock:
            running = self._running.pop(upload_id, None)
        size = part.stat().st_size
        fresh = running is None or running.size != size
        stored = hash_file(part) if fresh else running.result()  # type: ignore[union-attr]
        if expected_sha256 not in (None, stored.sha256) or expected_blake3 not in (
            None,
            stored.blake3,
        ):
            self.discard_upload(upload_id)
            return None
        if self._place(part, stored.blake3, size=stored.size):
            self._write_back(self.path(stored.blake3))
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        return stored

    def discard_upload(self, upload_id: str) -> None:
        with self._running_lock:
            self._running.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            self._part(upload_id).unlink()

    # Garbage collection ----------------------------------------------------------------------

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Held while an object is placed, or while a version that names objects is written:
        the collector (`exclusive`) never removes an object in between."""
        with self._gc_lock_path.open("rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by the collector: no object is placed while it decides what to remove."""
        with self._gc_lock_path.open("rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def open_part_files(self) -> list[str]:
        return [p.stem for p in self._uploads.glob("*.part")]

    def size_of(self, b3: str) -> int:
        """The object's size in bytes; 0 when it is not here."""
        try:
            return self.path(b3).stat().st_size
        except FileNotFoundError:
            return 0

    def remove(self, b3: str) -> int:
        """Delete an object and what was derived from it (a JSONL file's line index,
        `indexes/<b3[:2]>/<b3>.*`); returns the object's size."""
        path = self.path(b3)
        for derived in (self.root / _DERIVED / b3[:2]).glob(f"{b3}.*"):
            with contextlib.suppress(FileNotFoundError):
                derived.unlink()
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size


def _mkstemp(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(dir=folder, prefix="obj-", suffix=".tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:  # pragma: no cover - platforms without directory fds
        if exc.errno in (errno.EACCES, errno.EISDIR):
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
