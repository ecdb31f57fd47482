"""The audit's reading of the log (audit/log.py) and its mirror (audit/mirror.py), on a facility
served over HTTP: every entry verified against the signed checkpoint, from the facility or
from a folder; a mirror that grows by what is new; every way a log can lie refused; and a
signed entry that does not say what its type declares named, not a crash."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commonlab.audit.log import (
    CURRENT_SCHEMA,
    DirectorySource,
    Entry,
    HttpSource,
    LogError,
    VerifiedLog,
    read_log,
)
from commonlab.audit.mirror import mirror, needed_paths
from commonlab.audit.published import PublishedError
from commonlab.audit.run import audit
from commonlab.record.note import Signer, generate_signer
from commonlab.record.tiles import decode_entry_bundle, entries_path
from tests.audit.logs import (
    append_many,
    edit_first_entry,
    first_bundle,
    flip_byte,
    rewrite_first_entry_and_its_leaf_tile,
    serve_folder,
    settled,
    write_log,
)
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.helpers import http_client


def files_in(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def test_the_log_over_http_is_every_entry_verified_and_parsed(served):  # noqa: F811
    append_many(served.facility, 5)
    size = settled(served.facility, served.url)
    log = read_log(HttpSource(served.url, http_client()), served.facility.signer.verifier_key())
    assert log.size == size == len(log.entries)
    assert [entry.index for entry in log.entries] == list(range(size))
    assert {entry.schema for entry in log.entries} == {CURRENT_SCHEMA}
    numbered = [entry for entry in log.entries if entry.type == "test:entry"]
    assert [entry.data["i"] for entry in numbered] == [0, 1, 2, 3, 4]
    assert numbered[0].subject_id == "0" and numbered[0].actor["id"]
    assert log.note.startswith(served.facility.origin + "\n")


def test_a_mirror_reads_as_the_facility_and_grows_by_only_what_is_new(served, tmp_path):  # noqa: F811
    key = served.facility.signer.verifier_key()
    folder = tmp_path / "mirror"
    append_many(served.facility, 20)
    first = settled(served.facility, served.url)

    made = mirror(served.url, folder, http=http_client())
    assert (made.size, made.previous_size, made.kept) == (first, None, 0)
    assert made.fetched == len(needed_paths(first))
    assert (folder / "key").read_text().strip() == key  # trusted on first use, kept
    assert files_in(folder) == {*needed_paths(first), "checkpoint", "key"}
    from_facility = read_log(HttpSource(served.url, http_client()), key)
    from_mirror = read_log(DirectorySource(folder), key)
    assert from_mirror.entries == from_facility.entries
    assert from_mirror.root_hash == from_facility.root_hash

    again = mirror(served.url, folder, http=http_client())
    assert (again.fetched, again.kept, again.removed) == (0, made.fetched, 0)

    # Past a full tile: the partial tiles give way to the full one and a new partial.
    append_many(served.facility, 300)
    second = settled(served.facility, served.url)
    grown = mirror(served.url, folder, http=http_client())
    before, after = set(needed_paths(first)), set(needed_paths(second))
    assert grown.previous_size == first and grown.size == second
    assert grown.fetched == len(after - before)
    assert grown.removed == len(before - after) > 0
    assert "tile/0/000" in after and files_in(folder) == {*after, "checkpoint", "key"}
    assert read_log(DirectorySource(folder), key).size == second


def test_the_audit_trusts_no_tile_a_mirror_without_them_reads_the_same(served, tmp_path):  # noqa: F811
    """Tiles are for proofs; the audit hashes the entries themselves up to the signed root."""
    append_many(served.facility, 300)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    key = served.facility.signer.verifier_key()
    whole = read_log(DirectorySource(tmp_path / "m"), key)
    for tile in [p for p in (tmp_path / "m" / "tile").iterdir() if p.name != "entries"]:
        shutil.rmtree(tile)
    assert read_log(DirectorySource(tmp_path / "m"), key).entries == whole.entries


def test_a_mirror_with_an_entry_edited_does_not_reach_the_signed_root(served, tmp_path):  # noqa: F811
    append_many(served.facility, 3)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    edit_first_entry(first_bundle(tmp_path / "m"))
    with pytest.raises(LogError, match="do not hash to the signed root"):
        read_log(DirectorySource(tmp_path / "m"), served.facility.signer.verifier_key())


def test_an_entry_rewritten_with_its_leaf_tile_does_not_reach_the_signed_root(served, tmp_path):  # noqa: F811
    """Leaf tiles are not signed: only what hashes up to the checkpoint's root is. An entry
    and its leaf tile rewritten together, under untouched higher tiles, must be refused."""
    append_many(served.facility, 300)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    rewrite_first_entry_and_its_leaf_tile(tmp_path / "m")
    with pytest.raises(LogError, match="do not hash to the signed root"):
        read_log(DirectorySource(tmp_path / "m"), served.facility.signer.verifier_key())


@pytest.mark.parametrize(
    "damage", [b"", b"\x00", b"\xff\xff\x00"], ids=["empty", "cut prefix", "cut entry"]
)
def test_a_mirror_with_a_broken_entry_bundle_is_refused(served, tmp_path, damage):  # noqa: F811
    append_many(served.facility, 3)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    first_bundle(tmp_path / "m").write_bytes(damage)
    with pytest.raises(LogError, match=r"is not an entry bundle|entries, not"):
        read_log(DirectorySource(tmp_path / "m"), served.facility.signer.verifier_key())


def test_a_checkpoint_from_another_log_is_refused(served, tmp_path):  # noqa: F811
    append_many(served.facility, 3)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    # Another log under the same name, signed by another key: the mirror's key refuses it.
    other = Signer.from_key(generate_signer(served.facility.origin)[0])
    write_log(tmp_path / "other", [b'{"type":"forged"}'] * 3, other)
    shutil.copy(tmp_path / "other" / "checkpoint", tmp_path / "m" / "checkpoint")
    with pytest.raises(LogError, match="is not signed by the key"):
        read_log(DirectorySource(tmp_path / "m"), served.facility.signer.verifier_key())
    with pytest.raises(LogError, match="is not signed by the key"):
        read_log(HttpSource(served.url, http_client()), other.verifier_key())


def test_the_mirror_refuses_a_rollback_a_fork_and_a_bad_tile_and_stays_as_it_was(
    served,  # noqa: F811
    tmp_path,
):
    key = served.facility.signer.verifier_key()
    folder, older = tmp_path / "mirror", tmp_path / "older"
    append_many(served.facility, 300)
    mirror(served.url, older, http=http_client())
    append_many(served.facility, 10)
    size = settled(served.facility, served.url)
    mirror(served.url, folder, http=http_client())
    kept = files_in(folder)
    checkpoint = (folder / "checkpoint").read_bytes()

    def unchanged() -> None:
        assert files_in(folder) == kept
        assert (folder / "checkpoint").read_bytes() == checkpoint

    # The facility shows an older, shorter log than the mirror verified.
    with pytest.raises(LogError, match=r"fewer than the \d+ this mirror verified: a rollback"):
        mirror("http://facility", folder, http=serve_folder(older, key))
    unchanged()

    # A log signed by the facility's own key that keeps the first tile but rewrites after it.
    first_tile = decode_entry_bundle((folder / entries_path(0)).read_bytes())
    rewritten = [*first_tile, *(b'{"type":"rewritten","i":%d}' % i for i in range(size - 250))]
    write_log(tmp_path / "fork", rewritten, served.facility.signer)
    refused = f"does not extend the one this mirror verified at size {size}"
    with pytest.raises(LogError, match=refused):
        mirror("http://facility", folder, http=serve_folder(tmp_path / "fork", key))
    unchanged()

    # A newer log whose new tile was altered on the way: nothing of it is kept.
    append_many(served.facility, 10)
    newer = settled(served.facility, served.url)
    mirror(served.url, tmp_path / "newer", http=http_client())
    (new_tile,) = {p for p in needed_paths(newer) if p.startswith("tile/0/")} - kept
    flip_byte(tmp_path / "newer" / new_tile, at=40)
    with pytest.raises(LogError, match="is not what the signed entries make"):
        mirror("http://facility", folder, http=serve_folder(tmp_path / "newer", key))
    unchanged()


def test_an_entry_that_does_not_say_what_its_type_declares_is_a_difference_not_a_crash():
    """The facility signs its own log: one that writes an entry missing its fields gets a
    finding naming the entry, and the rest of the log is still replayed."""

    def entry(index: int, type_: str, subject: str, data: dict) -> Entry:
        moment = datetime(2027, 1, 4, tzinfo=UTC)
        return Entry(index, type_, moment, {"id": "system"}, subject, data, 2, None)

    log = VerifiedLog(
        "hand-made",
        2,
        b"",
        "",
        [
            entry(0, "workloads:workload:admitted", "job/1", {"config_sha256": "ab"}),
            entry(1, "governance:motion:tabled", "motion/1", {"kind": 7}),
        ],
    )

    class NothingPublished:
        def pages(self, path: str, **params):
            raise PublishedError(path)

        json = csv = pages

    report = audit(log, NothingPublished())  # type: ignore[arg-type]
    named = {d.claim for d in report.findings.differences if d.book == "record"}
    assert "entry 0 (workloads:workload:admitted)" in named


def test_the_mirror_refuses_an_entry_rewritten_with_its_leaf_tile(served, tmp_path):  # noqa: F811
    append_many(served.facility, 300)
    settled(served.facility, served.url)
    key = served.facility.signer.verifier_key()
    mirror(served.url, tmp_path / "lying", http=http_client())
    rewrite_first_entry_and_its_leaf_tile(tmp_path / "lying")
    with pytest.raises(LogError, match="do not hash to the signed root"):
        mirror("http://lying", tmp_path / "m", http=serve_folder(tmp_path / "lying", key))
    assert not (tmp_path / "m" / "checkpoint").exists()
