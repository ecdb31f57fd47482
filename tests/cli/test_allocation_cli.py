"""Calls, proposals, review and share reports from the command line, against a live facility."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from tests.cli.test_cli import run


def _person(capsys, name, role, institution=None):
    argv = ["person", "create", name, "--role", role, "--json"]
    if institution:
        argv += ["--institution", str(institution)]
    person = json.loads(run(capsys, *argv)[1])
    token = json.loads(
        run(capsys, "token", "issue", str(person["id"]), "--scope", "write", "--json")[1]
    )
    return person, token["token"]


def test_call_to_report(capsys, served, monkeypatch, tmp_path):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    kenya = json.loads(
        run(
            capsys,
            "institution",
            "create",
            "University of Nairobi",
            "--country",
            "KE",
            "--kind",
            "university",
            "--json",
        )[1]
    )
    italy = json.loads(
        run(
            capsys,
            "institution",
            "create",
            "Sapienza",
            "--country",
            "IT",
            "--kind",
            "university",
            "--json",
        )[1]
    )
    run(capsys, "member", "found", "IT=Italy=25", "FR=France=25", "DE=Germany=25", "ES=Spain=25")
    _pi, pi_token = _person(capsys, "Wanjiru", "pi", kenya["id"])
    rome, rome_token = _person(capsys, "Reviewer Rome", "reviewer", italy["id"])
    local, _ = _person(capsys, "Reviewer Nairobi", "reviewer", kenya["id"])
    now = datetime.now(UTC)
    spec = tmp_path / "call.json"
    spec.write_text(
        json.dumps(
            {
                "title": "Speech",
                "pool": "open_calls",
                "budget": {"H100": "10000"},
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=9)).isoformat(),
                "rubric": [{"criterion": "excellence", "weight": 1}],
            }
        )
    )
    code, out, err = run(capsys, "call", "create", f"@{spec}")
    assert code == 0, err
    assert "Call 1 opened" in out
    assert "Speech" in run(capsys, "call", "list")[1]

    monkeypatch.setenv("COMMONLAB_TOKEN", pi_token)
    body = {
        "call_id": 1,
        "institution_id": kenya["id"],
        "title": "Swahili ASR",
        "abstract": "Open ASR.",
        "requested": {"H100": "400"},
        "starts_on": date.today().isoformat(),
        "ends_on": (date.today() + timedelta(days=365)).isoformat(),
        "release_plan": {"weights": True, "data": True, "code": True, "licence": "MIT"},
    }
    code, out, err = run(capsys, "proposal", "submit", json.dumps(body))
    assert code == 0, err
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(capsys, "review", "candidates", "1")
    assert "same institution as the PI" in out
    code, out, err = run(capsys, "review", "suggest", "1")
    assert code == 0, err
    assert "Reviewer Rome" in out and "Reviewer Nairobi" not in out
    code, _, err = run(capsys, "review", "assign", "1", str(local["id"]))
    assert code == 1 and "same institution" in err
    assert run(capsys, "review", "assign", "1", str(rome["id"]))[0] == 0
    monkeypatch.setenv("COMMONLAB_TOKEN", rome_token)
    code, _, err = run(capsys, "review", "score", "1", "excellence=4")
    assert code == 0, err
    code, _, err = run(capsys, "review", "score", "1", "excellence=high")
    assert code == 1 and "criterion=1..5" in err
    monkeypatch.setenv("COMMONLAB_TOKEN", pi_token)
    assert run(capsys, "proposal", "reply", "1", "We will publish everything.")[0] == 0
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(capsys, "call", "rank", "1")
    assert "Swahili ASR" in out and "4.00" in out
    code, out, err = run(capsys, "proposal", "decide", "1", "--award")
    assert code == 0, err
    assert "proj-1 is active" in out
    code, out, err = run(capsys, "allocation", "reserve", "1", "50", "--job", "j1")
    assert code == 0, err
    code, out, err = run(capsys, "allocation", "settle", "1", "40")
    assert code == 0 and "Charged 40" in out
    code, _, err = run(capsys, "allocation", "settle", "1", "40")
    assert code == 1 and "exactly once" in err
    code, out, _ = run(capsys, "allocation", "show", "1", "--json")
    assert json.loads(out)["used"] == {"H100": "40.00"}
    assert json.loads(out)["tranches"][0]["drawn"] == "40.00"
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "allocation", "show", "1")
    assert code == 0, err
    assert "Quarterly tranches" in out and "Q1 (now)" in out and "40.00" in out
    header = next(line for line in out.splitlines() if "┃ quarter" in line)  # whole at 80
    labels = [cell.strip() for cell in header.split("┃")[1:-1]]
    assert labels == ["quarter", "class", "starts", "tranche", "drawn", "held", "left"]
    assert max(len(line) for line in out.splitlines()) <= 80
    monkeypatch.setenv("COLUMNS", "200")
    today, tomorrow = date.today(), date.today() + timedelta(days=1)
    code, out, err = run(
        capsys,
        "report",
        "usage",
        "--start",
        today.isoformat(),
        "--end",
        tomorrow.isoformat(),
        "--by",
        "institution",
        "--csv",
    )
    assert code == 0, err
    assert "University of Nairobi,1,400,40.00" in out
    code, out, err = run(capsys, "report", "shares", "--start", "2027-01-01", "--end", "2028-01-01")
    assert code == 0, err
    assert "IT" in out and "25" in out
    code, _, err = run(capsys, "report", "shares", "--start", "soon", "--end", "2028-01-01")
    assert code == 1 and "YYYY-MM-DD" in err
