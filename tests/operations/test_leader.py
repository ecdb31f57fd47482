"""The leader lease on both databases: one holder at a time, a follower takes over when the
leader goes (its process dies, its connection is cut), and a process that leads again starts
its duties again. The fleet of real servers is in test_leader_failover.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, text

from commonlab import record
from commonlab.app import create_app
from commonlab.compute.executors.local import LocalExecutor, _lock_runner
from commonlab.compute.executors.runner import write_json
from commonlab.operations.leader import (
    Duty,
    FileLease,
    Leadership,
    PostgresLease,
    leader_status,
    lease_for,
)
from commonlab.policy.principal import SYSTEM
from commonlab.record.models import Head
from commonlab.record.sequencer import Sequencer
from tests.record.events import SampleEvent


def eventually(check, *, within: float = 20.0) -> None:
    """Wait for `check()` to hold: a bound on liveness, not a timing claim."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.02)


class Recorder:
    """Duties that write down when they start and stop."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def duties(self, who: str) -> list[Duty]:
        return [
            Duty(
                f"{who}-{name}",
                lambda name=name: self.events.append(f"{who} starts {name}"),
                lambda name=name: self.events.append(f"{who} stops {name}"),
            )
            for name in ("sequencer", "controller")
        ]


def test_one_process_holds_the_lease_at_a_time(facility):
    first = lease_for(facility, holder="commonlab a pid 1")
    second = lease_for(facility, holder="commonlab b pid 2")
    assert leader_status(facility).held is False
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert first.held() and not second.held()
    status = leader_status(facility)
    assert status.held and status.holder == "commonlab a pid 1"
    first.release()
    assert leader_status(facility).held is False
    assert second.try_acquire() is True
    assert leader_status(facility).holder == "commonlab b pid 2"
    second.release()
    assert leader_status(facility).held is False


def test_a_follower_takes_over_when_the_leader_steps_down(facility):
    recorder = Recorder()
    first = Leadership(lease_for(facility, holder="a"), recorder.duties("a"), retry_s=0.05)
    second = Leadership(lease_for(facility, holder="b"), recorder.duties("b"), retry_s=0.05)
    first.start()
    second.start()
    try:
        assert first.is_leader and not second.is_leader
        assert recorder.events == ["a starts sequencer", "a starts controller"]
        first.stop()
        eventually(lambda: second.is_leader)
        # The leader stops its duties, last started first, before its successor starts any.
        assert recorder.events[2:] == [
            "a stops controller",
            "a stops sequencer",
            "b starts sequencer",
            "b starts controller",
        ]
    finally:
        second.stop()
        first.stop()
    assert recorder.events[-2:] == ["b stops controller", "b stops sequencer"]


def test_a_duty_that_cannot_start_hands_the_lease_on(facility):
    def broken() -> None:
        raise RuntimeError("no executor")

    stopped: list[str] = []
    duties = [
        Duty("fine", lambda: None, lambda: stopped.append("fine")),
        Duty("broken", broken, lambda: stopped.append("broken")),
    ]
    leadership = Leadership(lease_for(facility), duties, retry_s=60)
    leadership.start()
    try:
        assert not leadership.is_leader
        assert stopped == ["broken", "fine"]
        assert leader_status(facility).held is False
    finally:
        leadership.stop()


def test_a_cut_connection_makes_the_postgres_leader_step_down(facility):
    if facility.db.is_sqlite:
        pytest.skip("PostgreSQL's lease lives on a connection; SQLite's on a lock file")
    recorder = Recorder()
    first = Leadership(
        PostgresLease(facility.db.url, holder="commonlab cut"), recorder.duties("a"), retry_s=0.05
    )
    second = Leadership(
        PostgresLease(facility.db.url, holder="commonlab next"), recorder.duties("b"), retry_s=0.05
    )
    first.start()
    second.start()
    admin = create_engine(facility.db.url, isolation_level="AUTOCOMMIT")
    try:
        assert first.is_leader
        with admin.connect() as conn:
            cut = conn.scalar(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'commonlab cut'"
                )
            )
        assert cut is True
        eventually(lambda: second.is_leader)
        eventually(lambda: not first.is_leader)
        assert "a stops controller" in recorder.events
        assert leader_status(facility).holder == "commonlab next"
    finally:
        admin.dispose()
        second.stop()
        first.stop()


HOLD_THE_LOCK = r"""
import sys, time
from pathlib import Path
from commonlab.operations.leader import FileLease
lease = FileLease(Path(sys.argv[1]), holder="commonlab child")
assert lease.try_acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_the_sqlite_lock_file_goes_with_its_process(tmp_path: Path):
    path = tmp_path / "leader.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "holding"
        here = FileLease(path, holder="commonlab here")
        assert here.try_acquire() is False
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert here.try_acquire() is True
        assert path.read_text() == "commonlab here"
        here.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_the_lock_file_is_never_followed_through_a_link(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "leader.lock").symlink_to(target)
    with pytest.raises(OSError):
        FileLease(tmp_path / "leader.lock").try_acquire()
    assert target.read_text() == "keep"


def test_a_sequencer_started_again_wakes_on_commits_again(facility):
    # A tick of a minute: only the commit's wake can fold the entry in within the bound.
    settings = facility.settings.model_copy(update={"sequencer_interval_ms": 60_000})
    sequencer = Sequencer(facility.db, facility.signer, settings=settings)
    sequencer.start()
    sequencer.stop()
    sequencer.start()
    try:
        with facility.db.session() as session, session.begin():
            record.append(session, SampleEvent.Crash, actor=SYSTEM, subject="s", data={"n": 1})
        eventually(lambda: _head_size(facility) == 1)
    finally:
        sequencer.stop()


def _head_size(facility) -> int:
    with facility.db.session() as session, session.begin():
        return session.get_one(Head, 1).size


def test_the_app_names_its_leadership(facility):
    app = create_app(facility, run_sequencer=False)
    assert app.state.leader.is_leader is False
    names = [duty.name for duty in app.state.leader.duties]
    assert names == ["record sequencer", "motion closer", "job controller"]


def test_a_followers_commit_wakes_the_postgres_leader(facility):
    if facility.db.is_sqlite:
        pytest.skip("SQLite's workers have no channel: the leader's ticks find their work")
    woken: list[str] = []
    duties = [Duty("sequencer", lambda: None, lambda: None, wake=lambda: woken.append("wake"))]
    leader = Leadership(lease_for(facility, holder="commonlab leader"), duties, retry_s=0.2)
    follower = Leadership(lease_for(facility, holder="commonlab follower"), [], retry_s=0.2)
    leader.start()
    follower.follow_commits(facility.db)
    follower.start()
    try:
        assert leader.is_leader and not follower.is_leader
        with facility.db.session() as session, session.begin():
            session.get_one(Head, 1)  # a commit without entries nudges nobody
        with facility.db.session() as session, session.begin():
            record.append(session, SampleEvent.Crash, actor=SYSTEM, subject="s", data={"n": 1})
        eventually(lambda: woken)
    finally:
        follower.stop()
        leader.stop()


def test_a_runner_that_is_starting_is_found_not_started_twice(tmp_path: Path):
    """A leader killed between starting a job's runner and writing launched.json: the runner
    holds the job's lock, so its successor waits for the runner's pid instead of starting a
    second runner (the local executor; Slurm finds a job by its name)."""
    workdir = tmp_path / "jobs" / "7"
    workdir.mkdir(parents=True)
    handoff = SimpleNamespace(workdir=workdir)
    executor = LocalExecutor(slots=1)
    assert executor.find(handoff) is None  # no runner: it may be started
    held = _lock_runner(workdir)  # what the runner inherits from the executor
    assert held is not None
    try:
        timer = threading.Timer(0.3, write_json, (workdir / "runner.json", {"pid": 4242}))
        timer.start()
        assert executor.find(handoff) == "4242"
        timer.join()
    finally:
        os.close(held)
