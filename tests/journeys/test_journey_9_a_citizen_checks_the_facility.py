"""Journey 9, a citizen checks the facility: a journalist follows the facility's record with
`commonlab record watch` and cosigns what it verified; the operator takes a backup; a day's
work adds entries and the journalist cosigns again; the operator restores the older backup.
The facility refuses to start on a record that lost entries a witness vouched for; forced, it
writes the fork on the record and announces it, and the journalist's watcher says loudly that
the log was rolled back, with both signed checkpoints as evidence. Where the facility itself
forgot what was cosigned (its home lost with a disk), the watcher is the one that says so.
SQLite and PostgreSQL, over HTTP, with the real CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from commonlab.config import Settings
from commonlab.facility import Facility, open_facility
from commonlab.identity.service import bootstrap_operator
from commonlab.record.witnessed import FILE_NAME
from tests.cli.conftest import free_port, serving
from tests.cli.test_cli import run
from tests.helpers import http_client

JOURNALIST = "watch.example-news.org"


@pytest.fixture
def settings(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The facility's settings, also in the environment, as the operator's shell has them."""
    port = free_port()
    home = tmp_path / "home"
    for name, value in {"HOME": str(home), "DATABASE_URL": database, "PORT": str(port)}.items():
        monkeypatch.setenv(f"COMMONLAB_{name}", value)
    return Settings(home=home, database_url=database, port=port, sequencer_interval_ms=5)


def record_size(url: str) -> int:
    return int(httpx.get(f"{url}/api/v1/record/checkpoint").json()["size"])


def wait_for_size(url: str, size: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (now := record_size(url)) >= size:
            return now
        time.sleep(0.05)
    raise AssertionError(f"the record never reached {size} entries")


def a_days_work(url: str, operator: dict[str, str], entries: int) -> None:
    """A handful of changes, each one an entry on the record."""
    api = http_client(base_url=url, timeout=30)
    for i in range(entries):
        made = api.post(
            "/api/v1/institutions",
            json={"name": f"Lab {i} {time.monotonic_ns()}", "country": "EE", "kind": "sme"},
            headers=operator,
        )
        assert made.status_code == 201, made.text


def journalist_watches(capsys, url: str, state: Path, key: Path | None) -> tuple[int, str, str]:
    cosign = ["--cosign-key", str(key)] if key else []
    return run(capsys, "record", "watch", url, "--state", str(state), "--once", *cosign)


def first_start(settings: Settings) -> tuple[Facility, dict[str, str]]:
    facility = open_facility(settings)
    with facility.db.session() as session:
        token = bootstrap_operator(session)
    assert token
    return facility, {"Authorization": f"Bearer {token}"}


def register_journalist(capsys, url: str, operator: dict[str, str], key: Path) -> None:
    code, out, err = run(capsys, "record", "witness-key", JOURNALIST, "--out", str(key))
    assert code == 0, err
    registered = http_client(base_url=url, timeout=30).post(
        "/api/v1/record/witnesses",
        json={"name": JOURNALIST, "verifier_key": out.strip().splitlines()[-1]},
        headers=operator,
    )
    assert registered.status_code == 201, registered.text


def test_journey_9_a_citizen_checks_the_facility(settings, tmp_path, capsys, monkeypatch):
    facility, operator = first_start(settings)
    key, state = tmp_path / "journalist.key", tmp_path / "watch.json"
    backup_1 = tmp_path / "backups" / "monday"
    with serving(facility, settings.port) as url:
        register_journalist(capsys, url, operator, key)
        # The journalist's watcher follows the log and cosigns what it verified.
        code, out, err = journalist_watches(capsys, url, state, key)
        assert code == 0 and "cosigned size" in out, err
        cosigned_monday = json.loads(state.read_text())["size"]

        # The operator backs the facility up while it runs.
        code, out, err = run(capsys, "backup", str(backup_1))
        assert code == 0, err
        assert "✓ backup of the" in out and (backup_1 / "manifest.json").is_file()
        manifest = json.loads((backup_1 / "manifest.json").read_text())
        assert JOURNALIST in manifest["record"]["checkpoint"]  # what a witness can check
        backed_up = manifest["record"]["size"]
        assert backed_up >= cosigned_monday

        # A day's work; the journalist's watcher verifies it and cosigns again.
        a_days_work(url, operator, entries=5)
        wait_for_size(url, backed_up + 5)
        code, out, err = journalist_watches(capsys, url, state, key)
        assert code == 0 and f"(was {cosigned_monday})" in out and "cosigned size" in out, err
        cosigned_tuesday = json.loads(state.read_text())["size"]
        assert cosigned_tuesday >= backed_up + 5
        assert "This log was forked" not in httpx.get(f"{url}/record").text
    facility.close()

    # The operator restores Monday's backup: it is told at once what that means.
    code, out, err = run(capsys, "restore", str(backup_1))
    assert code == 0, err
    assert f"the record at {backed_up} entries" in out
    assert f"A witness cosigned a checkpoint of {cosigned_tuesday}" in " ".join(out.split())

    # The facility refuses to start on a record shorter than what a witness cosigned (`up`
    # in this process: were it to start, the test fails rather than serve for ever).
    with monkeypatch.context() as patch:
        patch.setattr(uvicorn.Server, "run", lambda *_: pytest.fail("the facility started"))
        code, _, err = run(capsys, "up")
    assert code == 1, err
    said = " ".join(err.split())
    assert f"refusing to start: the record holds {backed_up} entries" in said
    assert f"{JOURNALIST} cosigned a checkpoint of {cosigned_tuesday}" in said
    assert "--force-fork" in said

    # Forced, the facility starts as a fork of its log, on the record and announced (`up
    # --force-fork` here, its server stopped at once; then served as after any start).
    with monkeypatch.context() as patch:
        stop = lambda server: server.config.app.state.facility.close()  # noqa: E731
        patch.setattr(uvicorn.Server, "run", stop)
        code, out, err = run(capsys, "up", "--force-fork")
    assert code == 0, err
    assert f"The record was forked at entry {backed_up}" in " ".join(out.split())
    facility = open_facility(settings)
    with serving(facility, settings.port) as url:
        # The journalist's watcher says so, loudly, and keeps both signed checkpoints.
        code, out, err = journalist_watches(capsys, url, state, None)
        assert code == 1
        alarm = " ".join(err.split())
        assert "ROLLBACK: THE PUBLIC RECORD WAS REWRITTEN" in alarm
        assert f"now serves a log of {backed_up + 1} entries" in alarm
        assert f"it signed a log of {cosigned_tuesday} entries that this watcher verified" in alarm
        gone = cosigned_tuesday - backed_up - 1
        assert f"{gone} published entries are gone" in alarm
        evidence = state.with_name(f"{state.name}.evidence-{cosigned_tuesday}.txt")
        kept = evidence.read_text()
        assert f"\n{cosigned_tuesday}\n" in kept and f"\n{backed_up + 1}\n" in kept
        # Its state still holds what it verified: it will not follow the fork unawares.
        assert json.loads(state.read_text())["size"] == cosigned_tuesday
        assert journalist_watches(capsys, url, state, None)[0] == 1

        # The facility announces the fork: on /health and on the record itself.
        (fork,) = httpx.get(f"{url}/api/v1/health").json()["record_forks"]
        assert fork["witnessed_size"] == cosigned_tuesday and fork["restored_size"] == backed_up
        assert fork["witnesses"] == [JOURNALIST]
        entries = httpx.get(f"{url}/api/v1/record/entries", params={"type": "record:log"}).json()
        (entry,) = entries["items"]
        assert entry["index"] == backed_up and entry["entry"]["type"] == "record:log:forked"
        page = " ".join(httpx.get(f"{url}/record").text.split())
        assert "This log was forked" in page
        assert f"{JOURNALIST} had cosigned a checkpoint of {cosigned_tuesday}" in page
    facility.close()


# What this adds to the journey above is the watcher's independence, not the database's part.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_where_the_facility_forgot_the_watcher_is_the_one_that_says_so(settings, tmp_path, capsys):
    facility, operator = first_start(settings)
    key, state = tmp_path / "journalist.key", tmp_path / "watch.json"
    with serving(facility, settings.port) as url:
        register_journalist(capsys, url, operator, key)
        assert journalist_watches(capsys, url, state, key)[0] == 0
        run(capsys, "backup", str(tmp_path / "monday"))
        a_days_work(url, operator, entries=3)
        wait_for_size(url, json.loads(state.read_text())["size"] + 3)
        assert journalist_watches(capsys, url, state, key)[0] == 0
    facility.close()
    # The home's copy of what was cosigned is lost with the disk; the backup comes back.
    (settings.home / FILE_NAME).unlink()
    code, _, err = run(capsys, "restore", str(tmp_path / "monday"))
    assert code == 0, err
    facility = open_facility(settings)  # it cannot know: it starts
    with serving(facility, settings.port) as url:
        code, _, err = journalist_watches(capsys, url, state, None)
        assert code == 1 and "ROLLBACK" in err and "published entries are gone" in err
    facility.close()


def test_bad_input_to_backup_and_restore_is_one_line_and_changes_nothing(
    settings, tmp_path, capsys
):
    facility, _ = first_start(settings)
    facility.sequence_now()
    code, _, err = run(capsys, "backup", str(tmp_path / "b1"))
    assert code == 0, err
    code, out, err = run(capsys, "restore", "--check", str(tmp_path / "b1"))
    assert code == 0 and "every file matches its manifest" in out, err
    before = (settings.home / "keys" / "record.key").read_bytes()
    # Restoring into the running facility.
    code, _, err = run(capsys, "restore", str(tmp_path / "b1"))
    assert code == 1 and "is running" in err and len(err.strip().splitlines()) == 1
    facility.close()
    cases = {
        "missing": (tmp_path / "nowhere", "no such folder"),
        "not a backup": (tmp_path, "has no manifest.json"),
    }
    damaged = tmp_path / "b1" / "keys" / "session.key"
    damaged.write_text("tampered")
    cases["damaged"] = (tmp_path / "b1", "does not match its SHA-256")
    for name, (source, message) in cases.items():
        code, _, err = run(capsys, "restore", str(source))
        line = " ".join(err.split())
        assert code == 1 and message in line, name
        assert err.startswith("error:") and err.count("error:") == 1, name
    code, _, err = run(capsys, "restore", "--check", str(tmp_path / "b1"))
    assert code == 1 and "does not match" in err
    # A destination that holds something already.
    code, _, err = run(capsys, "backup", str(tmp_path / "b1"))
    assert code == 1 and "exists and is not empty" in " ".join(err.split())
    assert (settings.home / "keys" / "record.key").read_bytes() == before
