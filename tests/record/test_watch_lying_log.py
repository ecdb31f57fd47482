"""`record watch` (and `record verify --url`, which uses it) against a facility that lies: an
entry rewritten together with its leaf tile, under higher tiles left as they were, is a fork,
on the first check and on a later one. Tiles are not signed; only what hashes up to the
checkpoint's root is."""

from __future__ import annotations

import pytest

from commonlab.audit.mirror import mirror
from commonlab.record.watch import LogForked, Watcher
from tests.audit.logs import (
    append_many,
    rewrite_first_entry_and_its_leaf_tile,
    serve_folder,
    settled,
)
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.helpers import http_client


def test_a_rewritten_entry_and_leaf_tile_is_a_fork_on_the_first_check(served, tmp_path):  # noqa: F811
    append_many(served.facility, 300)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    rewrite_first_entry_and_its_leaf_tile(tmp_path / "m")
    key = served.facility.signer.verifier_key()
    watcher = Watcher(
        "http://lying", state_path=tmp_path / "w.json", http=serve_folder(tmp_path / "m", key)
    )
    with pytest.raises(LogForked, match="do not hash to the signed root"):
        watcher.check_once()
    assert not (tmp_path / "w.json").exists()  # nothing verified, nothing remembered


def test_entries_after_the_last_check_are_hashed_up_to_the_new_root(served, tmp_path):  # noqa: F811
    key = served.facility.signer.verifier_key()
    append_many(served.facility, 10)
    first = settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    watcher = Watcher(
        "http://lying", state_path=tmp_path / "w.json", http=serve_folder(tmp_path / "m", key)
    )
    assert watcher.check_once().checked_entries == first
    append_many(served.facility, 600)
    settled(served.facility, served.url)
    mirror(served.url, tmp_path / "m", http=http_client())
    # An entry among the new ones rewritten with its leaf tile (entries 256..511): refused.
    rewrite_first_entry_and_its_leaf_tile(tmp_path / "m", bundle_index=1)
    with pytest.raises(LogForked, match="do not hash to the signed root"):
        watcher.check_once()
