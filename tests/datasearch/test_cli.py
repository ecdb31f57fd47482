"""The training-data search commands against a served facility: a mistake is one line and a
non-zero exit, before anything is sent where the command can tell; the facility's refusals
come back as one line too; a file is hashed here as the facility hashes a record, and the
signed filter is checked offline (a tampered one is refused)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from commonlab.datasearch.content import content_sha256
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.cli.test_cli import run


def one_line(err: str) -> bool:
    return 0 < len(err.strip().splitlines()) <= 3  # one message, folded by the terminal


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "a passage"],  # neither a model nor a dataset
        ["search", "a passage", "--model", "m@1", "--dataset", "d@1"],
        ["trace", "--model", "models/a/b@1"],  # no text and no file
        ["trace", "--model", "models/a/b@1", "text", "--file", "f.txt"],
        ["membership", "--model", "models/a/b@1"],  # nothing to look for
        ["membership", "--model", "models/a/b@1", "--sha256", "ab", "--passage", "x"],
        ["optout", "file"],
        ["optout", "file", "--passage", "x", "--source", "https://e.org/*"],
        ["optout", "file", "--file", "/no/such/file.txt"],
        ["optout", "hash", "/no/such/file.txt"],
    ],
)
def test_mistakes_are_one_line(capsys, served, monkeypatch, argv):  # noqa: F811
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    code, out, err = run(capsys, *argv)
    assert code != 0 and one_line(err), (out, err)
    assert "Traceback" not in err


def test_the_facilitys_refusals_are_one_line(capsys, served, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    for argv in (
        ["search", "x", "--dataset", "datasets/nobody/nothing@1"],
        ["search", "x" * 2001, "--dataset", "datasets/nobody/nothing@1"],
        ["optout", "file", "--sha256", "not-hex"],
        ["optout", "file", "--source", "example.org/*"],
        ["optout", "show", "999"],
        ["optout", "decide", "999", "--reject", "--reason", "x"],
    ):
        code, out, err = run(capsys, *argv)
        assert code != 0 and one_line(err), (argv, out, err)
    assert json.loads(run(capsys, "optout", "list", "--json")[1])["items"] == []


def test_hash_check_and_file_agree_with_the_facility(capsys, served, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    chapter = tmp_path / "chapter.txt"
    chapter.write_text("It was a bright cold day.\r\n")
    code, out, _ = run(capsys, "optout", "hash", str(chapter))
    assert code == 0 and out.strip() == content_sha256("It was a bright cold day.")
    code, out, err = run(capsys, "optout", "check", str(chapter))
    assert code == 0 and "not opted out" in " ".join(out.split()), err
    code, out, err = run(capsys, "optout", "file", "--file", str(chapter))
    assert code == 0 and "matched no record you may read" in " ".join(out.split()), out + err
    code, out, err = run(capsys, "optout", "check", str(chapter))
    assert code == 0 and out.startswith("opted out"), out + err
    # Offline: the filter saved, the key given; a filter changed after signing is refused.
    filter_file = tmp_path / "filter.json"

    signed = httpx.get(f"{served.url}/api/v1/optouts/filter").json()
    key = httpx.get(f"{served.url}/api/v1/record/key").json()["verifier_key"]
    filter_file.write_text(json.dumps(signed))
    code, out, err = run(
        capsys, "optout", "check", str(chapter), "--filter", str(filter_file), "--key", key
    )
    assert code == 0 and out.startswith("opted out"), out + err
    payload = json.loads(base64.b64decode(signed["payload"]))
    payload["optouts"] = 0
    signed["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    filter_file.write_text(json.dumps(signed))
    code, out, err = run(
        capsys, "optout", "check", str(chapter), "--filter", str(filter_file), "--key", key
    )
    assert code != 0 and "does not verify" in err and one_line(err)
