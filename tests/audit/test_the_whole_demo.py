"""`commonlab audit` on the demo as `up --demo` leaves it (its data published, a model trained
as job 1 and evaluated as job 2): every book agrees with the facility, the artifacts book
checks every public version a dozen ways, the compute book both jobs, the workloads book the
evaluation; then an evaluation's score changed in the database behind the service's back is
named, and nothing else is. One demo built for all of it: training it is the slow part."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from commonlab.audit.log import HttpSource, read_log
from commonlab.audit.published import Published
from commonlab.audit.run import audit
from commonlab.workloads.models import Evaluation
from tests.audit.audited import build_demo_models_for
from tests.cli.conftest import cli_config, served  # noqa: F401  (fixtures)
from tests.journeys.conftest import demo  # noqa: F401  (fixture)


@pytest.mark.slow
def test_the_whole_demo_audits_clean_and_a_changed_score_is_named(demo):  # noqa: F811
    build_demo_models_for(demo)
    facility = demo.served.facility
    key = facility.signer.verifier_key()
    report = audit(read_log(HttpSource(demo.url), key), Published(demo.url))

    assert [d.line() for d in report.findings.differences] == []
    checked = report.findings.checked
    # Four public versions (corpus, QA set, model, evaluations), each checked a dozen ways.
    assert checked["artifacts"] > 60
    assert any("no release path" in note for note in report.findings.notes)
    # Two jobs (train, evaluate) on the local partition: each ended once, charged once, and
    # the public jobs report counts them; the partition's certification.
    assert checked["compute"] >= 12
    # The evaluation: its fields, sample root and job, and the list of public evaluations.
    assert checked["workloads"] >= 10
    assert not report.unread.get("workloads:evaluation:published")

    with facility.db.session() as db, db.begin():
        db.execute(update(Evaluation).values(metrics={"accuracy": 0.75, "stderr": 0.0}))
    again = audit(read_log(HttpSource(demo.url), key), Published(demo.url))
    said = [(d.claim, d.replayed, d.published) for d in again.findings.differences]
    assert said == [
        ("evaluation/1 metrics", {"accuracy": 0, "stderr": 0}, {"accuracy": 0.75, "stderr": 0.0})
    ]
