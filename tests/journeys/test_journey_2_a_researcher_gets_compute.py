"""Journey 2, a researcher gets compute, on the demo facility from the CLI and the portal:
Wanjiru Kamau (University of Nairobi; Kenya is no member state) answers the open call; the
operator is offered two reviewers and not the third, who shares her institution; both score,
one asks a question and she replies; the panel ranks and awards; above the council threshold
the award waits for the council, whose delegates vote it in; the allocation shows its
quarterly tranches; she adds two students, submits a job with --watch, and sees the hours it
drew on the project page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import httpx

from tests.cli.test_cli import run
from tests.helpers import http_client
from tests.journeys.workloads import SPEECH_TOML, speech_dataset
from tests.portal.helpers import sign_in

DELEGATES = ["Giulia Rossi", "Claire Martin", "Jonas Weber", "Lucía García", "Sofia Lindberg"]


def as_person(monkeypatch, demo, token: str) -> None:
    monkeypatch.setenv("COMMONLAB_URL", demo.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", token)


def signed_in(demo, token: str) -> httpx.Client:
    """A browser's session on the portal: the sign-in form, its CSRF field, the cookie."""
    web = http_client(base_url=demo.url, timeout=30)
    sign_in(web, token)
    return web


def text_of(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).replace("&#39;", "'").split())


def person_id(api, operator, name: str) -> int:
    found = api.get("/api/v1/people", params={"q": name}, headers=operator).json()["items"]
    return next(p["id"] for p in found if p["name"] == name)


def test_journey_2_a_researcher_gets_compute(demo, capsys, monkeypatch, tmp_path):
    walk_journey_2(demo, capsys, monkeypatch, tmp_path)


def walk_journey_2(
    demo, capsys, monkeypatch, tmp_path, *, before_the_job: Callable[[], None] = lambda: None
) -> None:
    """The journey on `demo`, whatever executor runs its jobs; `before_the_job` is what an
    operator of that executor does once the allocation is active (Slurm: sync its accounts)."""
    api = http_client(base_url=demo.url, timeout=30)
    operator_token = demo.served.token
    operator = {"Authorization": f"Bearer {operator_token}"}
    pi_token = demo.pi_token  # Wanjiru Kamau's, as `up --demo` prints it

    # She answers the open call from Nairobi, from the command line.
    (call,) = [c for c in api.get("/api/v1/calls").json()["items"] if "speech" in c["title"]]
    nairobi = next(
        i
        for i in api.get("/api/v1/institutions").json()["items"]
        if i["name"] == "University of Nairobi"
    )
    assert nairobi["country"] == "KE"
    spec = tmp_path / "proposal.json"
    spec.write_text(
        json.dumps(
            {
                "call_id": call["id"],
                "institution_id": nairobi["id"],
                "title": "Speech models for Kiswahili and Dholuo",
                "abstract": "Open multilingual ASR: weights and data under open licences.",
                "requested": {"H100": "60000", "cpu": "200"},
                "starts_on": date.today().isoformat(),
                "ends_on": (date.today() + timedelta(days=365)).isoformat(),
                "level": 1,
                "release_plan": {"weights": True, "data": True, "code": True,
                                 "licence": "CC-BY-4.0"},
            }
        )
    )  # fmt: skip
    as_person(monkeypatch, demo, pi_token)
    code, out, err = run(capsys, "proposal", "submit", f"@{spec}")
    assert code == 0, err
    proposal_id = int(re.search(r"Proposal (\d+) submitted", out).group(1))

    # The operator is offered the reviewers without a conflict; Asha Mwangi, at the PI's
    # university, is excluded automatically, on the CLI and on the proposal's page.
    as_person(monkeypatch, demo, operator_token)
    code, out, err = run(capsys, "review", "candidates", str(proposal_id))
    assert code == 0, err
    asha = next(line for line in out.splitlines() if "Asha Mwangi" in line)
    assert "same institution as the PI" in asha
    code, out, err = run(capsys, "review", "suggest", str(proposal_id))
    assert code == 0, err
    assert "Kadri Tamm" in out and "Francesca Conti" in out and "Asha" not in out
    web = signed_in(demo, operator_token)
    page = text_of(web.get(f"/proposals/{proposal_id}").text)
    assert "Suggested reviewers" in page and "Assign Kadri Tamm" in page
    assert "Assign Asha Mwangi" not in page
    # Assigning stays an explicit act; the excluded reviewer is refused with the reason.
    for name in ("Kadri Tamm", "Francesca Conti"):
        code, _, err = run(capsys, "review", "assign", str(proposal_id),
                           str(person_id(api, operator, name)))  # fmt: skip
        assert code == 0, err
    code, _, err = run(capsys, "review", "assign", str(proposal_id),
                       str(person_id(api, operator, "Asha Mwangi")))  # fmt: skip
    assert code == 1 and "same institution" in err

    # Both score; one asks a question, and the PI replies.
    as_person(monkeypatch, demo, demo.token_of("Kadri Tamm"))
    question = "How will the Dholuo data be licensed?"
    code, _, err = run(capsys, "review", "score", str(proposal_id), "excellence=5",
                       "openness=4", "--comment", question)  # fmt: skip
    assert code == 0, err
    as_person(monkeypatch, demo, demo.token_of("Francesca Conti"))
    code, _, err = run(capsys, "review", "score", str(proposal_id), "excellence=4",
                       "openness=5")  # fmt: skip
    assert code == 0, err
    as_person(monkeypatch, demo, pi_token)
    code, _, err = run(capsys, "proposal", "reply", str(proposal_id),
                       "Per record, under CC-BY-4.0, with each speaker's consent.")  # fmt: skip
    assert code == 0, err

    # The panel ranks the call and awards; above the council's threshold, it waits.
    as_person(monkeypatch, demo, operator_token)
    ranking = api.get(f"/api/v1/calls/{call['id']}/ranking", headers=operator).json()
    ours = next(r for r in ranking if r["proposal"] == proposal_id)
    assert ours["score"] == "4.50"
    code, out, _ = run(capsys, "call", "rank", str(call["id"]))
    assert "Kiswahili" in out and "4.50" in out
    code, out, err = run(capsys, "proposal", "decide", str(proposal_id), "--award")
    assert code == 0, err
    project = re.search(r"awarded: (\S+) is awaiting_council", out).group(1)
    (allocation,) = [
        a
        for a in api.get("/api/v1/allocations", params={"limit": 200}).json()["items"]
        if a["project"] == project
    ]
    assert allocation["country"] == "KE"

    # The council approves: a delegate tables the motion, the states vote it in.
    as_person(monkeypatch, demo, demo.token_of("Giulia Rossi"))
    code, out, err = run(
        capsys, "motion", "table", "approve_allocation", "--title",
        "Approve 60,000 H100 hours for Kiswahili and Dholuo speech",
        "--payload", json.dumps({"allocation_id": allocation["id"]}),
    )  # fmt: skip
    assert code == 0, err
    motion_id = int(re.search(r"Motion (\d+) tabled", out).group(1))
    for delegate in DELEGATES:
        if api.get(f"/api/v1/motions/{motion_id}").json()["status"] != "open":
            break  # decided: the outcome could no longer change
        as_person(monkeypatch, demo, demo.token_of(delegate))
        code, _, err = run(capsys, "vote", str(motion_id), "yes")
        assert code == 0, err
    assert api.get(f"/api/v1/motions/{motion_id}").json()["status"] == "passed"
    assert api.get(f"/api/v1/allocations/{allocation['id']}").json()["status"] == "active"

    # The allocation appears with its quarterly tranches: API and CLI agree.
    tranches = api.get(f"/api/v1/allocations/{allocation['id']}/tranches").json()
    h100 = [t for t in tranches if t["accelerator"] == "H100"]
    assert len(h100) >= 4 and sum(Decimal(t["released"]) for t in h100) == 60000
    as_person(monkeypatch, demo, pi_token)
    code, out, err = run(capsys, "allocation", "show", str(allocation["id"]))
    assert code == 0, err
    assert "Quarterly tranches" in out and "Q1 (now)" in out and h100[0]["released"] in out

    # She adds two students (accounts an operator made for them).
    students = []
    as_person(monkeypatch, demo, operator_token)
    for name in ("Achieng Otieno", "Baraka Njoroge"):
        code, out, err = run(capsys, "person", "create", name, "--role", "researcher",
                             "--institution", str(nairobi["id"]), "--json")  # fmt: skip
        assert code == 0, err
        students.append(json.loads(out))
    as_person(monkeypatch, demo, pi_token)
    for student in students:
        code, out, err = run(capsys, "allocation", "add-member", str(allocation["id"]),
                             str(student["id"]))  # fmt: skip
        assert code == 0, err
        assert f"now a member of {project}" in out

    before_the_job()
    # She publishes the clips her team recorded, then trains a speech recognizer on them
    # with the facility's own `train` workload, from the CLI, and watches it to the end.
    corpus = tmp_path / "kiswahili-speech"
    speech_dataset(corpus)
    code, _, err = run(capsys, "dataset", "push", str(corpus), "--repo",
                       f"{project}/kiswahili-speech", "--license", "CC0-1.0")  # fmt: skip
    assert code == 0, err
    config = tmp_path / "asr.toml"
    config.write_text(SPEECH_TOML)
    code, out, err = run(
        capsys, "train", "-p", project, "--config", str(config), "--dataset",
        f"{project}/kiswahili-speech", "--out", "kiswahili-asr", "--time", "15", "--watch",
    )  # fmt: skip
    assert code == 0, out + err
    assert "loss" in out and "succeeded" in out
    assert f"models/{project}/kiswahili-asr@1 published and signed" in out
    (job,) = api.get("/api/v1/jobs", params={"project": project},
                     headers={"Authorization": f"Bearer {pi_token}"}).json()["items"]  # fmt: skip
    assert job["state"] == "succeeded" and Decimal(job["charged_hours"]) > 0

    # The project page shows the members, the tranches, the job and the hours it drew.
    web = signed_in(demo, pi_token)
    me = web.get("/me").text
    assert f'href="/projects/{project}"' in me
    page = web.get(f"/projects/{project}")
    assert page.status_code == 200, page.text[:300]
    text = text_of(page.text)
    for name in ("Wanjiru Kamau", "Achieng Otieno", "Baraka Njoroge"):
        assert name in text
    assert f'href="/jobs/{job["id"]}"' in page.text and '<svg class="tranche-chart"' in page.text
    cpu_now = next(
        t
        for t in api.get(f"/api/v1/allocations/{allocation['id']}/tranches").json()
        if t["accelerator"] == "cpu" and t["current"]
    )
    assert Decimal(cpu_now["drawn"]) == Decimal(job["charged_hours"])
    row = re.search(r"<th scope=\"row\">cpu</th>(.*?)</tr>", page.text, re.S)
    assert row, "no cpu row in the hours per class"
    drawn = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))[1]
    assert Decimal(drawn) == Decimal(job["charged_hours"])
    # The public sees the awarded project, not its insides.
    public = text_of(httpx.get(f"{demo.url}/projects/{project}").text)
    assert "Speech models for Kiswahili and Dholuo" in public and "Members" not in public
