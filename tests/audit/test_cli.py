"""`commonlab audit URL` and `commonlab record mirror URL DIR` as a person runs them: on the
demo the audit prints its table (or a JSON report) and exits 0; every hostile or broken input
— a wrong key, a damaged mirror, a log from elsewhere, a facility that is down, a URL that is
no facility — is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.record.note import Signer, generate_signer
from tests.audit.logs import (
    append_many,
    edit_first_entry,
    first_bundle,
    rewrite_first_entry_and_its_leaf_tile,
    settled,
    write_log,
)
from tests.cli.conftest import cli_config, free_port, served, serving  # noqa: F401  (fixtures)
from tests.cli.test_cli import run
from tests.journeys.conftest import demo  # noqa: F401  (fixture)


def one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code != 0, out
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_the_audit_of_the_demo_prints_its_table_and_a_json_report(demo, capsys):  # noqa: F811
    settled(demo.served.facility, demo.url)
    code, out, err = run(capsys, "audit", demo.url)
    assert code == 0, out + err
    assert "figures checked" in out and "differences" in out  # the table's header
    for book in ("governance", "allocation", "artifacts", "compute"):
        assert re.search(rf"│ {book} +│ +[1-9]\d* │ +0 │", out), f"no row for {book}:\n{out}"
    assert re.search(r"✓ \d+ of \d+ entries replayed; \d+ figures agree with the facility", out)

    code, out, err = run(capsys, "audit", demo.url, "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["differences"] == []
    assert report["size"] > 0 and report["replayed"] > 0
    assert report["checked"]["governance"] > 0


def test_mirror_then_audit_from_the_mirror(demo, capsys, tmp_path):  # noqa: F811
    size = settled(demo.served.facility, demo.url)
    folder = tmp_path / "mirror"
    code, out, err = run(capsys, "record", "mirror", demo.url, str(folder))
    assert code == 0, out + err
    said = " ".join(out.split())  # the folder's path is long enough to wrap the line
    assert f"{size} entries verified and mirrored" in said and "0 already there" in said
    code, out, err = run(capsys, "record", "mirror", demo.url, str(folder))
    assert code == 0, out + err
    said = " ".join(out.split())
    assert f"{size} entries (was {size})" in said and "0 files fetched" in said

    code, out, err = run(capsys, "audit", demo.url, "--from-tiles", str(folder), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["size"] == size
    assert report["log"] == str(folder)


def _mirror(capsys, url: str, folder: Path) -> None:
    code, out, err = run(capsys, "record", "mirror", url, str(folder))
    assert code == 0, out + err


def test_a_wrong_key_is_one_line(capsys, served):  # noqa: F811
    settled(served.facility, served.url)
    other = generate_signer(served.facility.origin)[1]
    code, out, err = run(capsys, "audit", served.url, "--key", other)
    one_line_error(code, out, err, "is not signed by the key given with --key")
    code, out, err = run(capsys, "audit", served.url, "--key", "not-a-key")
    one_line_error(code, out, err, "verifier key", "key ID must be 8 hex digits")


def test_an_entry_rewritten_with_its_leaf_tile_does_not_verify(capsys, served, tmp_path):  # noqa: F811
    append_many(served.facility, 300)
    settled(served.facility, served.url)
    _mirror(capsys, served.url, tmp_path / "m")
    rewrite_first_entry_and_its_leaf_tile(tmp_path / "m")
    code, out, err = run(capsys, "audit", served.url, "--from-tiles", str(tmp_path / "m"))
    one_line_error(code, out, err, "does not verify", "do not hash to the signed root")


def test_a_mirror_with_an_entry_edited_does_not_verify(capsys, served, tmp_path):  # noqa: F811
    append_many(served.facility, 3)
    settled(served.facility, served.url)
    _mirror(capsys, served.url, tmp_path / "m")
    edit_first_entry(first_bundle(tmp_path / "m"))
    code, out, err = run(capsys, "audit", served.url, "--from-tiles", str(tmp_path / "m"))
    one_line_error(code, out, err, "does not verify", "do not hash to the signed root")


def test_a_checkpoint_from_another_log_is_refused(capsys, served, tmp_path):  # noqa: F811
    append_many(served.facility, 3)
    settled(served.facility, served.url)
    _mirror(capsys, served.url, tmp_path / "m")
    other = Signer.from_key(generate_signer(served.facility.origin)[0])
    write_log(tmp_path / "other", [b'{"type":"forged"}'] * 3, other)
    shutil.copy(tmp_path / "other" / "checkpoint", tmp_path / "m" / "checkpoint")
    code, out, err = run(capsys, "audit", served.url, "--from-tiles", str(tmp_path / "m"))
    one_line_error(code, out, err, "does not verify", "is not signed by the key")
    # Nor will the mirror take it: it is not the log it mirrors.
    code, out, err = run(capsys, "record", "mirror", served.url, str(tmp_path / "m"))
    one_line_error(code, out, err, "the mirror was not updated", "not signed by the key")


def test_another_facility_at_an_audited_url_is_refused(capsys, tmp_path):
    port = free_port()
    first = open_facility(Settings(home=tmp_path / "first", port=port, sequencer_interval_ms=5))
    with serving(first, port) as url:
        settled(first, url)
        code, out, err = run(capsys, "audit", url, "--json")
        assert code == 0, out + err
    first.close()
    second = open_facility(Settings(home=tmp_path / "second", port=port, sequencer_interval_ms=5))
    with serving(second, port) as url:
        settled(second, url)
        code, out, err = run(capsys, "audit", url)
        one_line_error(code, out, err, "KEY CHANGED")
    second.close()


def test_a_facility_that_is_down_is_one_line(capsys, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "audit", url)
    one_line_error(code, out, err, "did not answer")
    code, out, err = run(capsys, "record", "mirror", url, str(tmp_path / "m"))
    one_line_error(code, out, err, "did not answer")


@pytest.fixture
def not_a_facility() -> Iterator[str]:
    """A web server that answers every path with a page of HTML, as most of the web does."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>Welcome</title><p>Hello."
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_that_is_not_a_facility_is_one_line(capsys, not_a_facility, served, tmp_path):  # noqa: F811
    for url in (not_a_facility, served.url + "/council"):
        code, out, err = run(capsys, "audit", url)
        one_line_error(code, out, err, "is not a commonlab facility")
        code, out, err = run(capsys, "record", "mirror", url, str(tmp_path / "m"))
        one_line_error(code, out, err, "is not a commonlab facility")
