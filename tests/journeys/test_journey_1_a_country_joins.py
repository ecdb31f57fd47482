"""Journey 1, a country joins: Estonia's admission, tabled on the demo facility, is voted by
the delegates of the five member states from the command line; the last vote decides it at
once by double majority; Estonia becomes a member with its share of the adopted scale and its
delegate votes; anyone reads the motion, the roll call and the new member on the portal; and a
witness in Estonia's audit office, who made its key with the CLI and followed the log before
the vote, finds the entries that admitted Estonia in the log it verified, and cosigns."""

from __future__ import annotations

import json
import re

import httpx

from commonlab.record.checkpoint import open_checkpoint
from tests.cli.test_cli import run
from tests.helpers import http_client

DELEGATES = {  # the demo's council
    "IT": "Giulia Rossi",
    "FR": "Claire Martin",
    "DE": "Jonas Weber",
    "ES": "Lucía García",
    "SE": "Sofia Lindberg",
}


def as_person(monkeypatch, demo, token: str) -> None:
    monkeypatch.setenv("COMMONLAB_URL", demo.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", token)


def test_journey_1_a_country_joins(demo, capsys, monkeypatch, tmp_path):
    api = http_client(base_url=demo.url, timeout=30)
    operator = {"Authorization": f"Bearer {demo.served.token}"}

    # Estonia's audit office makes a witness key; the facility registers the witness.
    key = tmp_path / "audit-ee.key"
    code, out, err = run(capsys, "record", "witness-key", "audit.riigikontroll.ee",
                         "--out", str(key))  # fmt: skip
    assert code == 0, err
    verifier_key = out.strip().splitlines()[-1]
    registered = api.post(
        "/api/v1/record/witnesses",
        json={"name": "audit.riigikontroll.ee", "verifier_key": verifier_key},
        headers=operator,
    )
    assert registered.status_code == 201, registered.text
    # Its monitor starts following the log before the vote.
    state = tmp_path / "watch.json"
    code, out, err = run(capsys, "record", "watch", demo.url, "--state", str(state), "--once")
    assert code == 0, err
    before = json.loads(state.read_text())["size"]

    # The admission motion the demo tabled; two states voted yes already.
    motions = api.get("/api/v1/motions").json()["items"]
    (admission,) = [m for m in motions if m["kind"] == "admit_member"]
    assert admission["status"] == "open" and admission["rule"] == "double"
    motion_id = admission["id"]

    # The other delegates vote from the command line; the last vote decides it at once.
    for code_ in ("FR", "DE", "ES"):
        as_person(monkeypatch, demo, demo.token_of(DELEGATES[code_]))
        code, out, err = run(capsys, "vote", str(motion_id), "yes")
        assert code == 0, err
    code, out, _ = run(capsys, "motion", "show", str(motion_id))
    assert "passed" in out and "double majority" in out

    # Estonia is a member, with its share of the adopted scale.
    members = {m["code"]: m for m in api.get("/api/v1/members").json()}
    assert members["EE"]["name"] == "Estonia" and members["EE"]["contribution"] == "9"
    # Its delegate-designate is seated and votes on the next motion.
    kadri = api.get("/api/v1/people", params={"q": "Kadri Tamm"}, headers=operator).json()
    kadri_id = next(p["id"] for p in kadri["items"] if p["name"] == "Kadri Tamm")
    as_person(monkeypatch, demo, demo.served.token)
    code, out, err = run(capsys, "member", "delegate", "EE", str(kadri_id))
    assert code == 0, err
    as_person(monkeypatch, demo, demo.token_of("Giulia Rossi"))
    payload = json.dumps({"name": "witness.ut.ee", "verifier_key": _witness("witness.ut.ee")})
    code, out, err = run(
        capsys, "motion", "table", "register_witness", "--title", "Register Tartu's witness",
        "--payload", payload,
    )  # fmt: skip
    assert code == 0, err
    next_motion = int(re.search(r"Motion (\d+) tabled", out).group(1))
    as_person(monkeypatch, demo, demo.token_of("Kadri Tamm"))
    code, out, err = run(capsys, "vote", str(next_motion), "yes")
    assert code == 0, err

    # Anyone reads the motion, its roll call and the new member on the portal.
    page = httpx.get(f"{demo.url}/motions/{motion_id}").text
    assert "Admit Estonia" in page and "passed" in page.lower()
    for code_ in DELEGATES:
        assert code_ in page  # the roll call names every state
    assert "Estonia" in httpx.get(f"{demo.url}/council").text

    # The witness follows the log again: the entries that admitted Estonia are in the log it
    # verified, consistent with what it saw before the vote, and it cosigns that checkpoint.
    code, out, err = run(capsys, "record", "watch", demo.url, "--state", str(state), "--once",
                         "--cosign-key", str(key))  # fmt: skip
    assert code == 0, err
    assert f"(was {before})" in out and "cosigned size" in out
    verified = json.loads(state.read_text())["size"]
    admitted = api.get(
        "/api/v1/record/entries", params={"type": "governance:member:admitted"}
    ).json()["items"]
    assert admitted and all(before <= item["index"] < verified for item in admitted)
    assert admitted[0]["entry"]["subject"] == "member/EE"
    note = httpx.get(f"{demo.url}/log/checkpoint").content
    _, cosignatures = open_checkpoint(
        note,
        origin=demo.served.facility.origin,
        verifier=demo.served.facility.signer.verifier_key(),
        witnesses=[verifier_key],
    )
    assert len(cosignatures) == 1


def _witness(name: str) -> str:
    from commonlab.record.checkpoint import generate_witness

    return generate_witness(name)[1]
