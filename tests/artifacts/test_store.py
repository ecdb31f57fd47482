"""The object store alone: content addressing, dedup, atomic placement, resumable uploads."""

from __future__ import annotations

import hashlib

import blake3
import pytest

from commonlab.artifacts.store import ObjectStore, StoredObject, UploadOffsetMismatch


def test_put_addresses_by_blake3_and_dedups(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    data = b"hello" * 1000
    a = store.put_stream([data[:10], data[10:]])
    b = store.put_stream([data])
    assert a == b and a.blake3 == blake3.blake3(data).hexdigest()
    assert a.sha256 == hashlib.sha256(data).hexdigest() and a.size == len(data)
    assert list(store.all_objects()) == [a.blake3]
    assert b"".join(store.iter_bytes(a.blake3, start=5, end=12)) == data[5:12]
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []  # no temporary left behind


def test_a_failed_stream_leaves_nothing(tmp_path):
    store = ObjectStore(tmp_path / "objects")

    def broken():
        yield b"partial"
        raise OSError("connection reset")

    with pytest.raises(OSError):
        store.put_stream(broken())
    assert list(store.all_objects()) == []
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_resumable_upload(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    data = bytes(range(256)) * 10
    sha = hashlib.sha256(data).hexdigest()
    store.begin_upload("u" * 20)
    assert store.append("u" * 20, 0, [data[:100]], limit=len(data)) == 100
    with pytest.raises(UploadOffsetMismatch) as wrong:
        store.append("u" * 20, 50, [data[50:]], limit=len(data))
    assert wrong.value.received == 100
    with pytest.raises(ValueError):
        store.append("u" * 20, 100, [data[100:], b"extra"], limit=len(data))
    assert store.received("u" * 20) == 100  # the refused chunk was cut back
    # A fresh process (no running digest) still finishes by re-reading the part file.
    again = ObjectStore(tmp_path / "objects")
    again.append("u" * 20, 100, [data[100:]], limit=len(data))
    stored = again.finish_upload("u" * 20, expected_sha256=sha)
    assert stored is not None and stored.size == len(data) and again.exists(stored.blake3)
    assert again.open_part_files() == []


def test_an_upload_with_the_wrong_sha256_is_discarded(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    store.begin_upload("v" * 20)
    store.append("v" * 20, 0, [b"abc"], limit=3)
    assert store.finish_upload("v" * 20, expected_sha256="0" * 64) is None
    assert list(store.all_objects()) == [] and store.open_part_files() == []


@pytest.mark.parametrize("bad", ["../x", "a" * 3, "x/y" * 10])
def test_ids_and_digests_are_checked(tmp_path, bad):
    store = ObjectStore(tmp_path / "objects")
    with pytest.raises(ValueError):
        store.begin_upload(bad)
    with pytest.raises(ValueError):
        store.path(bad)


def test_an_upload_checked_by_blake3_alone(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    data = b"abc" * 1000
    store.begin_upload("w" * 20)
    store.append("w" * 20, 0, [data], limit=len(data))
    assert store.finish_upload("w" * 20, expected_sha256=None, expected_blake3="0" * 64) is None
    store.begin_upload("w" * 20)
    store.part_path("w" * 20).write_bytes(data)  # written in place, as a local client does
    stored = store.finish_upload(
        "w" * 20, expected_sha256=None, expected_blake3=blake3.blake3(data).hexdigest()
    )
    assert stored is not None and stored.sha256 == hashlib.sha256(data).hexdigest()


def test_an_upload_that_declared_no_digest_is_stored_under_its_bytes(tmp_path):
    """The CLI's shared-file-system path copies new files in without hashing them first:
    the store computes both digests once, and places the object under them."""
    store = ObjectStore(tmp_path / "objects")
    data = b"mpya" * 5000
    store.begin_upload("n" * 20)
    store.part_path("n" * 20).write_bytes(data)
    stored = store.finish_upload("n" * 20, expected_sha256=None, expected_blake3=None)
    assert stored == StoredObject(
        blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data)
    )
    assert store.path(stored.blake3).read_bytes() == data
    assert not store.part_path("n" * 20).exists()
    # The same bytes again: one object, and the second part file is gone.
    store.begin_upload("m" * 20)
    store.part_path("m" * 20).write_bytes(data)
    assert store.finish_upload("m" * 20, expected_sha256=None, expected_blake3=None) == stored
    assert list(store.all_objects()) == [stored.blake3]


def test_a_short_object_left_by_a_crash_is_replaced_and_durable_objects_sync(tmp_path):
    """Uploads are placed without fsync (a version fsyncs its objects before it is
    published); an object a crash left short is not 'held', and the next upload replaces it."""
    store = ObjectStore(tmp_path / "objects")
    data = bytes(range(256)) * 64
    b3 = blake3.blake3(data).hexdigest()
    store.path(b3).parent.mkdir(parents=True)
    store.path(b3).write_bytes(data[:10])
    assert store.exists(b3) and not store.holds(b3, len(data))
    store.begin_upload("x" * 20)
    store.append("x" * 20, 0, [data], limit=len(data))
    assert store.finish_upload("x" * 20, expected_sha256=None, expected_blake3=b3) is not None
    assert store.holds(b3, len(data)) and store.path(b3).read_bytes() == data
    store.make_durable([b3])


def test_hash_file_matches_both_digests(tmp_path):
    from commonlab.artifacts.store import hash_file

    for data in (b"", b"x", bytes(range(256)) * 40_000):
        path = tmp_path / "f"
        path.write_bytes(data)
        got = hash_file(path)
        assert got.blake3 == blake3.blake3(data).hexdigest()
        assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == len(data)


def test_removing_an_object_removes_what_was_derived_from_it(tmp_path):
    """A JSONL file's line index is named by the object's address: it goes with the object,
    and another object's index stays."""
    store = ObjectStore(tmp_path / "objects")
    kept, gone = store.put_stream([b'{"a": 1}\n']), store.put_stream([b'{"b": 2}\n'])
    for b3 in (kept.blake3, gone.blake3):
        index = store.root / "indexes" / b3[:2] / f"{b3}.lines"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_bytes(b"index")
    assert store.remove(gone.blake3) == gone.size
    assert not store.exists(gone.blake3)
    assert not (store.root / "indexes" / gone.blake3[:2] / f"{gone.blake3}.lines").exists()
    assert (store.root / "indexes" / kept.blake3[:2] / f"{kept.blake3}.lines").exists()


def test_an_upload_of_many_batches_is_hashed_as_it_is_written(tmp_path):
    """Past one batch (8 MiB) the bytes are hashed and written by helpers while the next batch
    is fetched: the digests kept as they arrived are the bytes' own, and a chunk refused after
    batches went out is cut back whole once they have landed."""
    store = ObjectStore(tmp_path / "objects")
    mib = 1 << 20
    data = b"".join(i.to_bytes(4, "big") + bytes(range(256)) * 4096 for i in range(20))
    pieces = [data[i : i + mib] for i in range(0, len(data), mib)]
    store.begin_upload("r" * 20)
    with pytest.raises(ValueError):  # two batches go to the helpers, then one piece too many
        store.append("r" * 20, 0, [*pieces[:17], b"x" * len(data)], limit=len(data))
    assert store.received("r" * 20) == 0

    store.begin_upload("m" * 20)
    assert store.append("m" * 20, 0, pieces[:11], limit=len(data)) == 11 * mib
    assert store.append("m" * 20, 11 * mib, pieces[11:], limit=len(data)) == len(data)
    assert store._running["m" * 20].size == len(data)  # the digests kept as the bytes came
    stored = store.finish_upload("m" * 20, expected_sha256=hashlib.sha256(data).hexdigest())
    want = StoredObject(
        blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data)
    )
    assert stored == want and store.path(want.blake3).read_bytes() == data
