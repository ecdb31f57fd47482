"""The `commonlab` command against a real facility over HTTP: what it prints, and that every
mistake is one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import update

from commonlab.cli.main import main
from commonlab.record.models import Entry


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_whoami_as_the_public_and_as_the_operator(capsys, served, monkeypatch):
    code, out, _ = run(capsys, "whoami", "--url", served.url)
    assert code == 0 and "the public" in out
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(capsys, "whoami", "--url", served.url)
    assert code == 0
    assert "Facility operator" in out and "operator" in out
    code, out, _ = run(capsys, "whoami", "--url", served.url, "--json")
    assert json.loads(out)["person"]["roles"] == ["operator"]


def test_login_saves_a_private_config_and_later_commands_use_it(capsys, served, cli_config):
    code, out, _ = run(capsys, "login", "--url", served.url, "--token", served.token)
    assert code == 0 and "Logged in" in out
    assert stat.S_IMODE(cli_config.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "whoami")
    assert "Facility operator" in out


def test_a_saved_login_it_cannot_read_is_one_line_and_not_read_when_the_environment_says_all(
    capsys, served, cli_config, monkeypatch
):
    unreadable = {
        "Is a directory": cli_config.mkdir,
        "not UTF-8": lambda: cli_config.write_bytes(b"\xff"),
    }
    for reason, make in unreadable.items():
        make()
        code, _, err = run(capsys, "whoami")
        assert code == 1 and err.count("\n") == 1
        assert f"cannot read the saved login {cli_config} ({reason}" in err
        # A job's case: its URL and token in the environment, its home not its own to read.
        monkeypatch.setenv("COMMONLAB_URL", served.url)
        monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
        code, out, _ = run(capsys, "whoami")
        assert code == 0 and "Facility operator" in out
        monkeypatch.delenv("COMMONLAB_URL")
        monkeypatch.delenv("COMMONLAB_TOKEN")
        if cli_config.is_dir():
            cli_config.rmdir()


def test_admin_commands_walk_identity(capsys, served, monkeypatch):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(
        capsys,
        "institution",
        "create",
        "University of Tartu",
        "--country",
        "EE",
        "--kind",
        "university",
        "--json",
    )
    assert code == 0
    institution = json.loads(out)
    code, out, _ = run(capsys, "institution", "list")
    assert "University of Tartu" in out
    code, out, _ = run(
        capsys,
        "person",
        "create",
        "Kadri Tamm",
        "--institution",
        str(institution["id"]),
        "--role",
        "delegate",
        "--json",
    )
    person = json.loads(out)
    assert person["roles"] == ["delegate"]
    code, out, _ = run(capsys, "role", "grant", str(person["id"]), "reviewer")
    assert code == 0 and "reviewer" in out
    code, out, _ = run(capsys, "token", "issue", str(person["id"]), "--scope", "read")
    assert code == 0 and "not shown again" in out and "clab_" in out
    code, out, _ = run(capsys, "clearance", "grant", str(person["id"]), "--level", "2")
    assert code == 0
    code, out, _ = run(capsys, "clearance", "list", str(person["id"]), "--json")
    assert json.loads(out)[0]["level"] == 2
    code, out, _ = run(capsys, "person", "list", "--role", "delegate")
    assert "Kadri Tamm" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["institution", "create", "X", "--country", "XX", "--kind", "university"], "ISO 3166"),
        (["institution", "create", "X", "--country", "EE", "--kind", "castle"], "kind"),
        (["person", "show", "999"], "no person with id 999"),
        (["clearance", "grant", "1", "--level", "9"], "--level"),
    ],
)
def test_mistakes_are_one_line_and_exit_non_zero(capsys, served, monkeypatch, argv, fragment):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, _, err = run(capsys, *argv)
    assert code != 0
    assert fragment in err
    assert len(err.strip().splitlines()) <= 3


def test_unreachable_facility_and_bad_token(capsys, served, monkeypatch):
    code, _, err = run(capsys, "whoami", "--url", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach" in err
    monkeypatch.setenv("COMMONLAB_TOKEN", "clab_nope_nope")
    code, _, err = run(capsys, "whoami", "--url", served.url)
    assert code == 1 and "unknown token" in err


def _wait_for_checkpoint(url: str, size: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/api/v1/record/checkpoint").json()["size"] >= size:
            return
        time.sleep(0.02)
    raise AssertionError("the sequencer did not sign in time")


def test_record_key_watch_and_remote_verify(capsys, served, tmp_path, monkeypatch):
    _wait_for_checkpoint(served.url, 3)  # the operator, its token, the local fleet
    code, out, _ = run(capsys, "record", "key", "--url", served.url)
    assert served.facility.signer.verifier_key() in out.replace("\n", "")
    state = tmp_path / "watch.json"
    code, out, _ = run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    assert code == 0 and "size 3" in out
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    run(
        capsys,
        "institution",
        "create",
        "Lab",
        "--country",
        "IT",
        "--kind",
        "sme",
        "--url",
        served.url,
    )
    _wait_for_checkpoint(served.url, 4)
    code, out, _ = run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    assert code == 0 and "size 4 (was 3)" in out
    code, out, _ = run(capsys, "record", "verify", "--url", served.url)
    assert code == 0 and "4 entries verified" in out


def test_watch_fails_loudly_on_a_rollback(capsys, served, tmp_path):
    _wait_for_checkpoint(served.url, 2)
    state = tmp_path / "watch.json"
    run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    saved = json.loads(state.read_text())
    saved["size"] += 5  # as if we had verified a longer log that has since been rolled back
    state.write_text(json.dumps(saved))
    code, _, err = run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    assert code == 1 and "ROLLBACK" in err


def test_watch_says_in_one_line_that_the_key_changed(capsys, served, tmp_path):
    """A rotated (or forged) signing key is what a witness exists to catch: one line, exit 1."""
    from commonlab.record.note import generate_signer

    _wait_for_checkpoint(served.url, 2)
    state = tmp_path / "watch.json"
    run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    saved = json.loads(state.read_text())
    origin = served.facility.signer.verifier_key().split("+", 1)[0]
    _, saved["verifier_key"] = generate_signer(origin)  # as if the facility's key had changed
    state.write_text(json.dumps(saved))
    code, out, err = run(capsys, "record", "watch", served.url, "--state", str(state), "--once")
    assert code == 1
    assert "KEY CHANGED" in err and "Traceback" not in out + err
    assert len(err.strip().splitlines()) <= 3  # one message (folded by the terminal width)


def test_watch_keeps_its_state_in_the_user_state_directory(capsys, served, tmp_path, monkeypatch):
    _wait_for_checkpoint(served.url, 2)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "record", "watch", served.url, "--once")
    assert code == 0
    assert not (tmp_path / "commonlab-watch.json").exists()
    (kept,) = (tmp_path / "state" / "commonlab" / "watch").iterdir()
    assert json.loads(kept.read_text())["url"] == served.url


def test_watch_of_a_facility_that_does_not_answer_is_one_line(capsys, tmp_path):
    from tests.cli.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(
        capsys, "record", "watch", url, "--state", str(tmp_path / "w.json"), "--once"
    )
    assert code == 1 and "did not answer" in err and "Traceback" not in out + err


def test_a_witness_makes_its_key_registers_it_and_cosigns(capsys, served, tmp_path):
    from commonlab.record.checkpoint import open_checkpoint

    key_file = tmp_path / "audit.key"
    make_key = ("record", "witness-key", "audit.example.ee", "--out", str(key_file))
    code, out, err = run(capsys, *make_key)
    assert code == 0, err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    verifier_key = out.strip().splitlines()[-1]
    assert verifier_key.startswith("audit.example.ee+")
    again = run(capsys, *make_key)
    assert again[0] == 1 and "never overwritten" in again[2]
    registered = httpx.post(
        f"{served.url}/api/v1/record/witnesses",
        json={"name": "audit.example.ee", "verifier_key": verifier_key},
        headers={"Authorization": f"Bearer {served.token}"},
    )
    assert registered.status_code == 201, registered.text
    _wait_for_checkpoint(served.url, 3)
    code, out, err = run(
        capsys, "record", "watch", served.url, "--state", str(tmp_path / "w.json"), "--once",
        "--cosign-key", str(key_file),
    )  # fmt: skip
    assert code == 0, err
    assert "cosigned size" in out
    note = httpx.get(f"{served.url}/log/checkpoint").content
    _, cosignatures = open_checkpoint(
        note,
        origin=served.facility.origin,
        verifier=served.facility.signer.verifier_key(),
        witnesses=[verifier_key],
    )
    assert len(cosignatures) == 1


def test_local_verify_passes_then_detects_a_tampered_entry(capsys, served, monkeypatch):
    _wait_for_checkpoint(served.url, 2)
    monkeypatch.setenv("COMMONLAB_HOME", str(served.settings.home))
    code, out, _ = run(capsys, "record", "verify")
    assert code == 0 and "the log verifies" in out
    with served.facility.db.session() as session, session.begin():
        session.execute(update(Entry).where(Entry.seq == 0).values(body=b'{"forged":true}'))
    code, out, err = run(capsys, "record", "verify")
    assert code == 1
    assert "does not verify" in err and "entry 0" in out


def test_watch_detects_a_tampered_tile(capsys, served, tmp_path):
    from commonlab.record.models import Tile

    _wait_for_checkpoint(served.url, 3)  # the operator, its token, the local fleet
    with served.facility.db.session() as session, session.begin():
        session.execute(update(Tile).values(hashes=bytes(3 * 32)))
    code, _, err = run(capsys, "record", "verify", "--url", served.url)
    assert code == 1 and "signed root" in err


@pytest.mark.parametrize("stale_login", ["this-address", "another-facility"])
def test_up_demo_then_whoami_from_a_second_shell(tmp_path, stale_login):
    """The newcomer's path: `commonlab up --demo`, then `commonlab whoami` elsewhere, and the
    printed job command pasted as printed, on a machine where an old login is saved: for an
    earlier facility at the same address, or for another facility."""
    from tests.cli.conftest import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    # As a newcomer runs it: the default home, `.commonlab` in the working directory.
    for name in ("COMMONLAB_HOME", "COMMONLAB_CLI_CONFIG", "COMMONLAB_TOKEN", "COMMONLAB_URL"):
        env.pop(name, None)
    old_url = url if stale_login == "this-address" else "https://facility.example.org"
    login = tmp_path / "config" / "commonlab" / "cli.toml"
    login.parent.mkdir(parents=True)
    login.write_text(f'url = "{old_url}"\ntoken = "clab_from_an_earlier_life"\n')
    cli = [sys.executable, "-m", "commonlab.cli"]
    server = subprocess.Popen(
        [*cli, "up", "--demo", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180  # a cold start seeds the demo; the machine is shared
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{url}/api/v1/health").status_code == 200:
                    break
            except httpx.ConnectError:
                time.sleep(0.2)
        institutions = httpx.get(f"{url}/api/v1/institutions").json()
        assert len(institutions["items"]) >= 5
        printed = []  # what `up` printed before serving
        while not any(" job submit -p proj-1 " in line for line in printed):
            printed.append(server.stdout.readline())

        def paste(command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["/bin/sh", "-c", command],
                env={**env, "PATH": "/usr/bin:/bin"},  # not even `commonlab` on the PATH
                capture_output=True,
                text=True,
                timeout=120,
            )

        if stale_login == "this-address":
            # The dead login was replaced: a bare `whoami` reaches this facility.
            whoami = subprocess.run(
                [*cli, "whoami"], env=env, capture_output=True, text=True, timeout=60
            )
        else:
            assert old_url in login.read_text()  # another facility's login is kept
            (told,) = [line for line in printed if "For this one: " in line]
            whoami = paste(told.split("For this one: ", 1)[1].strip())
        assert whoami.returncode == 0 and "Facility operator" in whoami.stdout, whoami.stderr
        # The PI's job command, pasted as printed, runs on this facility.
        command = next(line for line in printed if " job submit -p proj-1 " in line).strip()
        pasted = paste(command)
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        assert "hello from the facility" in pasted.stdout
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    output = "".join(printed) + output
    assert "operator token" in output and "clab_" in output
    # The demo PI's command is printed whole on one line, with this facility's URL.
    assert re.search(
        rf"^COMMONLAB_URL={url} COMMONLAB_TOKEN=clab_\S+ /\S+/commonlab job submit -p proj-1 ",
        output,
        re.M,
    )
