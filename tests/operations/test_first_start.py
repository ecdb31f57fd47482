"""Several hosts started at once on a fresh PostgreSQL and a shared home (issue 20's
multi-host deployment, started by one command on every host): every start succeeds, the
schema is made once, the facility gets one signing key and one session secret, and exactly
one of them creates the first operator and prints its token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from commonlab.identity.models import Person
from tests.conftest import _reset_postgres, empty_postgres_database

# One first start, as `up` makes it: open the facility (migrations, keys, the record's
# check), then the first operator. Each waits at a file barrier so that all go at once.
FIRST_START = r"""
import json, sys, time
from pathlib import Path
from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.identity.service import bootstrap_operator
home, url, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
facility = open_facility(Settings(home=home, database_url=url))
with facility.db.session() as db:
    token = bootstrap_operator(db)
print(json.dumps({"token": token, "key": facility.signer.name}))
facility.close()
"""

STARTS = 4


@pytest.fixture
def fresh_database(worker_id: str) -> Iterator[str]:
    """An empty PostgreSQL database, not migrated."""
    with empty_postgres_database(f"commonlab_first_{worker_id}_{os.getpid()}") as url:
        yield url


def test_hosts_started_at_once_make_one_facility(fresh_database: str, tmp_path: Path) -> None:
    home, go = tmp_path / "shared-home", tmp_path / "go"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START, str(home), fresh_database, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(STARTS)
    ]
    go.touch()
    answers = []
    for start in starts:
        out, err = start.communicate(timeout=120)
        assert start.returncode == 0, err[-3000:]
        answers.append(json.loads(out.strip().splitlines()[-1]))

    tokens = [a["token"] for a in answers if a["token"]]
    assert len(tokens) == 1  # one first operator, its token printed once
    assert len({a["key"] for a in answers}) == 1  # one signing key
    engine = create_engine(fresh_database)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Person)) == 1
        assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    engine.dispose()


FIRST_OPERATOR = r"""
import sys, time
from pathlib import Path
from commonlab.db import Database
from commonlab.identity.service import bootstrap_operator
url, go = sys.argv[1], Path(sys.argv[2])
db = Database(url)
db.engine.connect().close()  # connected before the barrier: only the transactions race
while not go.exists():
    time.sleep(0.0005)
with db.session() as session:
    print(bootstrap_operator(session) or "")
db.dispose()
"""


def test_one_first_operator_when_hosts_create_it_at_once(postgres_url: str, tmp_path: Path) -> None:
    _reset_postgres(postgres_url)
    go = tmp_path / "go"
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_OPERATOR, postgres_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(3)  # every process imported and connected, waiting at the barrier
    go.touch()
    printed = []
    for start in starts:
        out, err = start.communicate(timeout=120)
        assert start.returncode == 0, err[-3000:]
        printed.append(out.strip())
    assert sum(1 for token in printed if token) == 1
