"""Kill the process at any point during appends and sequencing (SIGKILL, for real): after a
restart the log verifies, no committed entry is lost, and no checkpoint contradicts one
signed before the crash."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.record.merkle import verify_consistency
from commonlab.record.models import Checkpoint, Entry
from commonlab.record.sequencer import Sequencer
from commonlab.record.store import ProofReader
from commonlab.record.verify import verify_store

# The child appends entries in small committed transactions (printing each committed id
# only after its commit returns) while its sequencer thread folds and signs.
CHILD = r"""
import sys, threading
from commonlab import record
from commonlab.config import Settings
from commonlab.facility import open_facility
from commonlab.policy.principal import SYSTEM
from commonlab.record.sequencer import Sequencer
from tests.record.events import SampleEvent

settings = Settings(home=sys.argv[1], database_url=sys.argv[2], sequencer_interval_ms=1)
facility = open_facility(settings)
sequencer = Sequencer(facility.db, facility.signer, settings=settings)
sequencer.start()
print("ready", flush=True)
n = 0
while True:
    with facility.db.session() as session:
        with session.begin():
            entries = []
            for _ in range(1 + n % 7):
                entry = record.append(
                    session, SampleEvent.Crash, actor=SYSTEM, subject="s", data={"n": n}
                )
                entries.append(entry)
                n += 1
        print(" ".join(entry.leaf_hash.hex() for entry in entries), flush=True)
"""


def _run_and_kill(home: Path, url: str, after: float) -> set[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=Path(__file__).parents[2],  # the child imports tests.record.events
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = set()
    for line in proc.stdout.read().splitlines():
        committed.update(bytes.fromhex(x) for x in line.split())
    return committed


@pytest.mark.slow
def test_sigkill_during_appends_and_sequencing_loses_nothing(tmp_path, database):
    settings = Settings(home=tmp_path / "home", database_url=database)
    facility = open_facility(settings)
    signed_before: dict[int, bytes] = {}
    committed: set[bytes] = set()
    rng = random.Random(7)
    for _round in range(4):
        committed |= _run_and_kill(settings.home, settings.db_url, rng.uniform(0.3, 1.2))
        with facility.db.session() as session, session.begin():
            rows = session.execute(select(Checkpoint.size, Checkpoint.root_hash))
            signed_before.update({size: root for size, root in rows})
    assert committed, "the child committed nothing before it was killed"

    # Restart: the sequencer folds whatever was committed but not yet sequenced.
    sequencer = Sequencer(facility.db, facility.signer, settings=settings)
    sequencer.run_once()
    sequencer.stop()
    with facility.db.session() as session:
        with session.begin():
            stored = set(session.scalars(select(Entry.leaf_hash).where(Entry.seq.is_not(None))))
        assert committed <= stored, f"lost {len(committed - stored)} committed entries"
        report = verify_store(session, facility.signer_verifier())
        assert report.ok, report.problems
        assert report.pending == 0
        with session.begin():
            latest = session.scalar(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1))
        reader = ProofReader()
        for size, root in signed_before.items():
            # Every checkpoint signed before a crash is a prefix of the final tree.
            with session.begin():
                proof = reader.consistency(session, size, latest.size)
            verify_consistency(size, latest.size, proof, root, latest.root_hash)
    facility.close()
    assert base64.b64encode(latest.root_hash)
