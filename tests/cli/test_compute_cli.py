"""The researcher's path on the embedded default: submit a job from the command line, watch
it to the end, and find its usage in the allocation ledger and the member-state share
report. A live facility with its job controller running, the local executor, real processes."""

from __future__ import annotations

import json
import shlex
import sys
from decimal import Decimal

from sqlalchemy import select

from commonlab.identity.models import ApiToken
from tests.cli.test_cli import run
from tests.compute.helpers import award_project
from tests.helpers import auth, http_client


def as_pi(served, monkeypatch):
    """A new project with hours; the CLI acts as its PI. Returns an API client and it."""
    api = http_client(base_url=served.url, timeout=30)
    project = award_project(api, auth(served.token))
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", project.pi_auth["Authorization"].split()[1])
    return api, project


def test_submit_watch_and_find_the_usage(capsys, served, monkeypatch):
    api, project = as_pi(served, monkeypatch)

    code, out, err = run(
        capsys,
        "job", "submit", "-p", project.name, "--time", "2", "--watch", "--",
        "echo", "training; sleep 1; echo", "done",
    )  # fmt: skip
    assert code == 0, err
    assert "admitted on partition local" in out
    assert "training\ndone\n" in out
    assert "succeeded" in out and "charged 0.01 cpu-hours" in out

    code, out, _ = run(capsys, "job", "list", "--json")
    jobs = json.loads(out)
    assert [j["state"] for j in jobs] == ["succeeded"]
    code, out, _ = run(capsys, "job", "show", str(jobs[0]["id"]))
    assert code == 0 and "History" in out and "running" in out
    code, out, _ = run(capsys, "job", "logs", str(jobs[0]["id"]))
    assert out == "training\ndone\n"

    allocation = api.get(
        f"/api/v1/allocations/{project.allocation_id}", headers=project.pi_auth
    ).json()
    assert Decimal(allocation["used"]["cpu"]) == Decimal("0.01")
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(capsys, "report", "shares")  # the current quarter, as the README says
    assert code == 0
    italy = next(line for line in out.splitlines() if "IT" in line.split())
    assert "0.01" in italy


def test_a_non_members_hours_are_reported_apart_from_the_member_states(capsys, served, monkeypatch):
    api = http_client(base_url=served.url, timeout=30)
    kenya = award_project(api, auth(served.token), country="KE")
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", kenya.pi_auth["Authorization"].split()[1])
    code, _, err = run(capsys, "job", "submit", "-p", kenya.name, "--watch", "--", "true")
    assert code == 0, err
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, out, _ = run(capsys, "report", "shares")
    assert code == 0
    assert "KE" not in {line.split()[0] for line in out.splitlines() if line.split()}
    assert "Delivered outside the member states: KE 0.01 h" in " ".join(out.split())
    code, out, _ = run(capsys, "report", "usage", "--by", "member", "--csv")
    assert code == 0
    groups = {line.split(",")[0] for line in out.splitlines()[1:]}
    assert "KE" not in groups and "outside the member states" in groups
    code, out, _ = run(capsys, "report", "shares", "--start", "2026-12-31", "--end", "2026-01-01")
    assert code == 1


def test_a_failed_job_shows_the_end_of_its_standard_error(capsys, served, monkeypatch):
    _api, project = as_pi(served, monkeypatch)
    code, out, _ = run(
        capsys, "job", "submit", "-p", project.name, "--watch", "--",
        "seq 1 30 >&2; no-such-command-here",
    )  # fmt: skip
    assert code == 1 and "failed (exit 127)" in out
    assert "last lines of its standard error" in out and "no-such-command-here" in out
    assert "\n22\n" in out and "\n21\n" not in out  # the last ten lines only


def test_cancel_and_bad_input_from_the_command_line(capsys, served, monkeypatch):
    _api, project = as_pi(served, monkeypatch)
    code, out, _ = run(capsys, "job", "submit", "-p", project.name, "--json", "--", "sleep 60")
    job = json.loads(out)
    code, out, _ = run(capsys, "job", "cancel", str(job["id"]))
    assert code == 0 and "cancelled" in out

    code, _, err = run(capsys, "job", "submit", "-p", project.name, "-n", "0", "--", "true")
    assert code != 0 and "accelerators" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "job", "submit", "-p", project.name, "-a", "H100", "--", "true")
    assert code != 0 and "no partition has H100" in err
    code, _, err = run(capsys, "job", "submit", "-p", project.name, "-e", "oops", "--", "true")
    assert code != 0 and "NAME=value" in err
    code, _, err = run(capsys, "job", "cancel", str(job["id"]))
    assert code != 0 and "already ended" in err
    code, _, err = run(capsys, "job", "show", "99999")
    assert code != 0 and "no job 99999" in err


def test_the_fleet_from_the_command_line(capsys, served, monkeypatch, tmp_path):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "fleet", "show")
    assert code == 0 and "local" in out and "CL-1" in out
    header = next(line for line in out.splitlines() if "partition" in line)
    assert "…" not in header and max(len(line) for line in out.splitlines()) <= 80
    for label in ("partition", "site", "class", "level", "nodes", "use", "jobs"):
        assert f" {label} " in header, label
    document = tmp_path / "fleet.toml"
    document.write_text(
        '[[sites]]\nname = "bologna"\ncountry = "IT"\n\n'
        '[[partitions]]\nname = "booster"\nsite = "bologna"\naccelerator = "A100"\n'
        'nodes = 4\naccelerators_per_node = 4\ncertified_level = "CL-3"\n'
    )
    code, out, err = run(capsys, "fleet", "apply", str(document))
    assert code == 0, err
    assert "16 accelerators" in out and "certify_partition" in out
    code, out, _ = run(capsys, "fleet", "show", "--json")
    booster = next(p for p in json.loads(out)["partitions"] if p["name"] == "booster")
    assert booster["accelerators"] == 16 and booster["certified_level"] == 1
    code, out, _ = run(capsys, "fleet", "node", "booster-0", "--state", "drain")
    assert code == 0 and "drain" in out
    code, out, _ = run(capsys, "fleet", "show", "--json")
    booster = next(p for p in json.loads(out)["partitions"] if p["name"] == "booster")
    assert booster["accelerators_up"] == 12
    document.write_text("[[sites]]\nname = 'x'\n")
    code, _, err = run(capsys, "fleet", "apply", str(document))
    assert code != 0 and "country" in err


def test_account_commands_on_the_local_executor_say_why_not(capsys, served, monkeypatch):
    monkeypatch.setenv("COMMONLAB_URL", served.url)
    monkeypatch.setenv("COMMONLAB_TOKEN", served.token)
    code, _, err = run(capsys, "fleet", "sync-accounts")
    assert code != 0 and "local executor" in err
    code, _, err = run(capsys, "fleet", "steer", "--window-days", "0")
    assert code != 0 and "window_days" in err


TRAIN = """
import json, pathlib, struct
out = pathlib.Path("model"); out.mkdir()
corpus = pathlib.Path("corpus.jsonl").read_text()
header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
(out / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
print("trained on", len(corpus.splitlines()), "records")
"""


def test_a_job_pushes_the_model_it_trained_as_its_submitter_with_lineage(
    capsys, served, monkeypatch, tmp_path
):
    """Inside a job, the facility's URL and a token of the job's own are in the
    environment, and the facility's `commonlab` on its PATH: `commonlab model push` publishes
    the output naming the job and what it read, the weights stamped with both; the token
    stops working when the job ends."""
    api, project = as_pi(served, monkeypatch)
    data = tmp_path / "corpus"
    data.mkdir()
    (data / "corpus.jsonl").write_text('{"text": "habari"}\n{"text": "asante"}\n')
    code, _, err = run(capsys, "dataset", "push", str(data), "--repo", f"{project.name}/corpus")
    assert code == 0, err

    python = shlex.quote(sys.executable)
    # A job sees nothing of this machine but its own folder (docs/compute.md): it reads its
    # input through the facility, with its own token.
    command = (
        f"commonlab dataset pull {project.name}/corpus data && cp data/corpus.jsonl . && "
        f"{python} -c {shlex.quote(TRAIN)}"
        f" && commonlab model push model --repo {project.name}/tiny --stamp"
    )
    code, out, err = run(
        capsys, "job", "submit", "-p", project.name, "--time", "5", "--watch",
        "--input", f"datasets/{project.name}/corpus@1", "--", command,
    )  # fmt: skip
    assert code == 0, err + out
    assert "trained on 2 records" in out and "published and signed" in out
    job_id = json.loads(run(capsys, "job", "list", "--json")[1])[0]["id"]

    model = f"/api/v1/artifacts/models/{project.name}/tiny/versions/1"
    version = api.get(model, headers=project.pi_auth).json()
    assert version["job"] == str(job_id)
    weights = version["files"][0]["meta"]["metadata"]
    assert weights["commonlab.job"] == str(job_id) and weights["commonlab.version"] == "1"
    edges = api.get(f"{model}/lineage", headers=project.pi_auth).json()["edges"]
    assert edges == [{"from": f"models/{project.name}/tiny@1", "relation": "trained_on",
                      "to": f"datasets/{project.name}/corpus@1", "job": str(job_id)}]  # fmt: skip

    with served.facility.db.session() as db:
        token = db.scalar(select(ApiToken).where(ApiToken.name == f"job/{job_id}"))
        assert token is not None and token.revoked_at is not None


def test_a_job_with_output_is_shown_running_before_the_controller_says_so():
    from commonlab.cli.compute_cmd import shown_state

    assert shown_state("queued", has_output=True) == "running"
    assert shown_state("admitted", has_output=True) == "running"
    assert shown_state("queued", has_output=False) == "queued"
    assert shown_state("failed", has_output=True) == "failed"  # an end is never masked
