"""The council from the command line, against a live facility."""

from __future__ import annotations

import json

from tests.cli.test_cli import run
from tests.helpers import close_when_due


def _delegate_token(capsys, name):
    _, out, _ = run(capsys, "person", "create", name, "--role", "delegate", "--json")
    person = json.loads(out)
    _, out, _ = run(capsys, "token", "issue", str(person["id"]), "--scope", "write", "--json")
    return person["id"], json.loads(out)["token"]


def test_found_table_vote_close_and_read_the_regulation(capsys, served, monkeypatch, tmp_path):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, err = run(
        capsys, "member", "found", "IT=Italy=25", "FR=France=25", "DE=Germany=25", "ES=Spain=25"
    )
    assert code == 0, err
    assert "Italy" in out
    tokens = {}
    for member in ("IT", "FR", "DE", "ES"):
        person_id, tokens[member] = _delegate_token(capsys, f"Delegate {member}")
        assert run(capsys, "member", "delegate", member, str(person_id))[0] == 0
    code, out, _ = run(capsys, "member", "list")
    assert "Delegate IT" in out

    regulation = json.loads(run(capsys, "regulation", "show")[1])["document"]
    regulation["allocation"]["council_threshold_hours"] = 10000
    payload = tmp_path / "regulation.json"
    payload.write_text(json.dumps({"regulation": regulation}))
    monkeypatch.setenv("COMMONLAB_TOKEN", tokens["IT"])
    code, out, err = run(
        capsys,
        "motion",
        "table",
        "adopt_regulation",
        "--title",
        "Lower the threshold",
        "--payload",
        f"@{payload}",
        "--days",
        "1",
    )
    assert code == 0, err
    assert "Motion 1 tabled (double majority)" in out
    for member in ("IT", "FR", "DE"):
        monkeypatch.setenv("COMMONLAB_TOKEN", tokens[member])
        code, out, err = run(capsys, "vote", "1", "yes")
        assert code == 0, err
    code, out, _ = run(capsys, "vote", "1", "yes")
    assert code == 1  # DE already voted yes
    close_when_due(served.facility.db, 1, hours=48)
    code, out, _ = run(capsys, "motion", "show", "1")
    assert "passed" in out and "double majority" in out
    code, out, _ = run(capsys, "regulation", "diff", "0", "1")
    assert "allocation.council_threshold_hours" in out and "10000" in out
    code, out, _ = run(capsys, "regulation", "history")
    assert "Provisional" in out
    code, out, _ = run(capsys, "motion", "list", "--status", "passed", "--json")
    assert [m["title"] for m in json.loads(out)] == ["Lower the threshold"]


def test_governance_mistakes_are_one_line(capsys, served, monkeypatch):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, _, err = run(capsys, "member", "found", "IT-Italy-25")
    assert code == 1 and "CODE=NAME=PERCENT" in err
    code, _, err = run(capsys, "member", "found", "IT=Italy=60", "FR=France=40")
    assert code == 1 and "ceiling" in err
    code, _, err = run(
        capsys, "motion", "table", "admit_member", "--title", "x", "--payload", "{nope"
    )
    assert code == 1 and "not valid JSON" in err
    code, _, err = run(capsys, "vote", "1", "maybe")
    assert code == 1


def test_motion_table_help_names_every_kind_the_facility_accepts(capsys):
    from commonlab.governance.schemas import MotionKind

    code, out, _ = run(capsys, "motion", "table", "--help")
    assert code == 0
    for kind in MotionKind:
        assert kind.value in " ".join(out.split()).replace("│", ""), kind
