"""Backups and their restore (operations/backup.py), and the start-up check against the
latest checkpoint a witness cosigned (record/witnessed.py): a round trip, the refusal of a
rolled-back or different log, a forced start recorded as a fork, and bad input refused in
one line with nothing changed. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from commonlab import record
from commonlab.config import Settings
from commonlab.db import Database
from commonlab.facility import Facility, open_facility
from commonlab.operations.backup import BackupError, backup, restore, verify_backup
from commonlab.policy.principal import SYSTEM, motion_authority
from commonlab.record.checkpoint import CosignatureSigner, cosign, generate_witness
from commonlab.record.log import checkpoint_with_cosignatures
from commonlab.record.models import Entry, Head
from commonlab.record.witnessed import LogContradictsWitness, load_witnessed
from commonlab.record.witnesses import accept_cosignature, register_witness
from tests.record.events import SampleEvent

WITNESS = "audit.example.ee"


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database, executor="slurm")


class Lab:
    """A facility the test stops and starts, as its operator would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.facility: Facility | None = open_facility(settings)
        self.witness_key, verifier_key = generate_witness(WITNESS)
        with self.db.session() as session:
            register_witness(session, motion_authority(1), name=WITNESS, verifier_key=verifier_key)
        self.facility.sequence_now()

    @property
    def db(self):
        assert self.facility is not None, "the facility is stopped"
        return self.facility.db

    def work(self, entries: int) -> int:
        """A day's worth of entries, sequenced; the record's size after."""
        with self.db.session() as session, session.begin():
            for i in range(entries):
                record.append(
                    session, SampleEvent.Entry, actor=SYSTEM, subject=f"t/{i}", data={"i": i}
                )
        assert self.facility is not None
        self.facility.sequence_now()
        return self.size()

    def size(self) -> int:
        with self.db.session() as session, session.begin():
            return session.get_one(Head, 1).size

    def cosign(self) -> int:
        """The witness cosigns the latest checkpoint, delivered as `record watch` does."""
        assert self.facility is not None
        with self.db.session() as session:
            note = checkpoint_with_cosignatures(session).decode()
            body = note.split("\n\n", 1)[0] + "\n"
            size = int(body.split("\n")[1])
            line = cosign(
                body, CosignatureSigner.from_key(self.witness_key), timestamp=1_800_000_000
            )
            accept_cosignature(
                session, size=size, line=line, remember_in=self.facility.witnessed_path
            )
        return size

    def stop(self) -> None:
        assert self.facility is not None
        self.facility.close()
        self.facility = None

    def start(self, **options: bool) -> Facility:
        self.facility = open_facility(self.settings, **options)
        return self.facility


@pytest.fixture
def lab(settings: Settings):
    lab = Lab(settings)
    yield lab
    if lab.facility is not None:
        lab.facility.close()


def forks(facility: Facility) -> list[dict]:
    with facility.db.session() as session, session.begin():
        return [
            json.loads(body)
            for body in session.scalars(select(Entry.body).where(Entry.type == "record:log:forked"))
        ]


def test_a_backup_restores_the_record_keys_and_objects(lab, tmp_path):
    lab.work(3)
    witnessed = lab.cosign()
    objects = lab.settings.home / "objects"
    blob = objects / "ab" / "cd" / ("abcd" + "0" * 60)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"an object")
    saved = backup(lab.settings, tmp_path / "b1")
    assert saved.record_size == witnessed
    manifest = verify_backup(tmp_path / "b1")
    assert manifest["record"]["size"] == witnessed
    # The checkpoint the snapshot holds, with the witness's cosignature, for a witness to check.
    assert manifest["record"]["checkpoint"].count("\n— ") == 2
    assert f"objects/ab/cd/abcd{'0' * 60}" in manifest["files"]
    assert {"keys/record.key", "keys/session.key"} <= manifest["files"].keys()

    lab.work(2)
    lab.stop()
    blob.unlink()
    done = restore(lab.settings, tmp_path / "b1")
    assert done.record_size == witnessed and done.objects_added == 1
    assert done.witnessed_size is None  # the backup holds the cosigned checkpoint
    assert blob.read_bytes() == b"an object"
    facility = lab.start()
    assert lab.size() == witnessed and facility.forks == []


def test_the_facility_refuses_a_log_shorter_than_what_a_witness_cosigned(lab, tmp_path):
    lab.work(3)
    lab.cosign()
    backup(lab.settings, tmp_path / "b1")
    old = lab.size()
    lab.work(5)
    cosigned = lab.cosign()
    lab.stop()
    done = restore(lab.settings, tmp_path / "b1")
    assert done.witnessed_size == cosigned  # said at once, before any start
    with pytest.raises(LogContradictsWitness) as refused:
        lab.start()
    message = str(refused.value)
    assert message.startswith("refusing to start: the record holds")
    assert f"{old} entries" in message and f"{cosigned}" in message and WITNESS in message
    assert "--force-fork" in message and "\n" not in message
    # Refused, nothing was written: the restored record is as the backup left it.
    database = Database(lab.settings.db_url)
    with database.session() as session, session.begin():
        assert session.get_one(Head, 1).size == old
        assert session.scalar(select(func.count()).where(Entry.type == "record:log:forked")) == 0
    database.dispose()
    # The high-water survived the restore: it is not in the backup and restore never writes it.
    remembered = load_witnessed(lab.settings.home / "witnessed.json")
    assert remembered is not None and remembered.size == cosigned


def test_a_forced_start_is_recorded_as_a_fork_and_announced(lab, tmp_path):
    lab.work(2)
    lab.cosign()
    backup(lab.settings, tmp_path / "b1")
    old = lab.size()
    lab.work(4)
    cosigned = lab.cosign()
    lab.stop()
    restore(lab.settings, tmp_path / "b1")
    facility = lab.start(force_fork=True)
    (fork,) = forks(facility)
    assert fork["data"]["witnessed_size"] == cosigned
    assert fork["data"]["restored_size"] == old
    assert fork["data"]["witnesses"] == [WITNESS]
    assert "entries the witnesses vouched for are gone" in fork["data"]["reason"]
    assert lab.size() == old + 1  # the fork's own entry, signed before any request
    assert facility.forks and facility.forks[0]["witnessed_size"] == cosigned
    # Started again, the fork is not recorded twice, and it is still announced.
    lab.stop()
    facility = lab.start()
    assert len(forks(facility)) == 1 and len(facility.forks) == 1


def test_a_different_log_of_the_same_size_is_refused(lab, tmp_path):
    # Two histories from one backup: the one the witness saw, and another written after a
    # restore that a witness never saw, of the same length.
    lab.work(2)
    backup(lab.settings, tmp_path / "b1")
    lab.work(3)
    cosigned = lab.cosign()
    lab.stop()
    restore(lab.settings, tmp_path / "b1")
    # Without the remembered checkpoint (lost with a disk), the facility cannot know...
    kept = lab.settings.home / "witnessed.json"
    shutil.move(kept, kept.with_suffix(".kept"))
    lab.start()
    with lab.db.session() as session, session.begin():
        record.append(session, SampleEvent.Alpha, actor=SYSTEM, subject="other", data={"i": 9})
    lab.work(2)
    assert lab.size() == cosigned
    lab.stop()
    # ...and with it back, the facility sees the same size with another root.
    shutil.move(kept.with_suffix(".kept"), kept)
    with pytest.raises(LogContradictsWitness, match=r"not the ones audit\.example\.ee cosigned"):
        lab.start()


def test_the_first_start_learns_the_cosignatures_the_database_holds(lab):
    # A home older than the file: the database's own latest cosigned checkpoint is remembered.
    lab.work(2)
    cosigned = lab.cosign()
    path = lab.settings.home / "witnessed.json"
    path.unlink()
    lab.stop()
    lab.start()
    remembered = load_witnessed(path)
    assert remembered is not None and remembered.size == cosigned


# Bad input: one line, nothing changed ---------------------------------------------------


def test_backup_refuses_a_destination_that_is_not_empty_or_inside_the_home(lab, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="exists and is not empty"):
        backup(lab.settings, full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    with pytest.raises(BackupError, match="inside the home"):
        backup(lab.settings, lab.settings.home / "backups")
    assert not (lab.settings.home / "backups").exists()


def _snapshot_of(lab: Lab) -> tuple[int, int]:
    with lab.db.session() as session, session.begin():
        return session.get_one(Head, 1).size, session.scalar(select(func.count(Entry.id))) or 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "manifest.json").unlink(), "has no manifest.json: not a commonlab backup"),
        (lambda b: (b / "manifest.json").write_text("{not json"), "manifest.json is damaged"),
        (lambda b: (b / "keys" / "session.key").write_text("x"), "does not match its SHA-256"),
        (lambda b: (b / "keys" / "record.key").unlink(), "keys/record.key is missing"),
        (lambda b: (b / "extra.bin").write_bytes(b"?"), "extra.bin is not in the manifest"),
        (lambda b: shutil.rmtree(b), "no such folder"),
    ],
)
def test_restore_refuses_a_damaged_or_missing_backup(lab, tmp_path, damage, message):
    backup(lab.settings, tmp_path / "b1")
    lab.work(2)
    before = _snapshot_of(lab)
    lab.stop()
    damage(tmp_path / "b1")
    with pytest.raises(BackupError, match=message) as refused:
        restore(lab.settings, tmp_path / "b1")
    assert "\n" not in str(refused.value)
    lab.start()
    assert _snapshot_of(lab) == before


def test_restore_refuses_a_backup_of_another_facility(lab, settings, tmp_path, database):
    other = Settings(home=tmp_path / "other", database_url=database, executor="slurm")
    lab.stop()
    foreign = open_facility(other)
    foreign.close()
    backup(other, tmp_path / "foreign")
    lab.start()
    lab.work(1)
    before = _snapshot_of(lab)
    lab.stop()
    with pytest.raises(BackupError, match="a backup of another facility"):
        restore(settings, tmp_path / "foreign")
    lab.start()
    assert _snapshot_of(lab) == before


def test_restore_refuses_a_running_facility(lab, tmp_path):
    backup(lab.settings, tmp_path / "b1")
    lab.work(2)
    before = _snapshot_of(lab)
    with pytest.raises(BackupError, match=r"is running .* stop it before restoring"):
        restore(lab.settings, tmp_path / "b1")
    assert _snapshot_of(lab) == before


def test_neither_a_start_nor_a_backup_meets_a_restore_half_done(lab, tmp_path):
    import fcntl
    import os

    from commonlab.errors import ConfigError

    lab.stop()
    # What `restore` holds while it writes (operations/backup.py: _stopped).
    fd = os.open(lab.settings.home / "facility.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(ConfigError, match="a restore is writing it"):
            lab.start()
        with pytest.raises(BackupError, match="a restore is writing"):
            backup(lab.settings, tmp_path / "b2")
        assert not (tmp_path / "b2").exists()
    finally:
        os.close(fd)


def test_a_backup_restores_into_a_new_home(lab, tmp_path, database):
    """Disaster recovery: the home is gone; the backup brings back the facility and its key."""
    lab.work(2)
    backup(lab.settings, tmp_path / "b1")
    origin, size = lab.facility.signer.verifier_key(), lab.size()
    lab.stop()
    new = Settings(home=tmp_path / "new-home", database_url=database, executor="slurm")
    restore(new, tmp_path / "b1")
    lab.settings = new
    facility = lab.start()
    assert facility.signer.verifier_key() == origin and lab.size() == size


def test_a_manifest_naming_a_path_outside_the_backup_is_refused(lab, tmp_path):
    backup(lab.settings, tmp_path / "b1")
    manifest_path = tmp_path / "b1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["objects/../../keys/record.key"] = {"sha256": "0" * 64, "bytes": 1}
    manifest_path.write_text(json.dumps(manifest))
    lab.stop()
    with pytest.raises(BackupError, match="which no backup holds"):
        restore(lab.settings, tmp_path / "b1")


def test_a_backup_that_cannot_be_written_leaves_nothing_behind(lab, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(BackupError, match="cannot make"):
        backup(lab.settings, tmp_path / "a-file" / "b1")
    # A disk that fills half way: the new folder is removed, not left as half a backup.
    from commonlab.operations import backup as module

    copy = module._copy

    def fill_up(source: Path, target: Path) -> dict:
        if target.name == "session.key":
            raise OSError(28, "No space left on device", str(target))
        return copy(source, target)

    monkeypatch.setattr(module, "_copy", fill_up)
    with pytest.raises(BackupError, match=r"the backup failed: .*No space left on device"):
        backup(lab.settings, tmp_path / "b2")
    assert not (tmp_path / "b2").exists()


def test_a_damaged_memory_of_the_cosigned_checkpoint_fails_closed(lab):
    lab.work(1)
    lab.cosign()
    lab.stop()
    (lab.settings.home / "witnessed.json").write_text('{"witnessed": {"size": "many"}}')
    with pytest.raises(LogContradictsWitness, match=r"witnessed\.json is damaged") as refused:
        lab.start()
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_dump_that_breaks_half_way_leaves_the_database_as_it_was(lab, tmp_path):
    """pg_restore failing mid-stream must not let psql commit half a database over the
    emptied schema (operations/backup.py: _restore_postgres)."""
    from commonlab.operations.backup import _restore_postgres

    lab.work(300)
    backup(lab.settings, tmp_path / "b1")
    dump = tmp_path / "b1" / "database.pgdump"
    broken = tmp_path / "broken.pgdump"
    broken.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    lab.work(1)
    before = _snapshot_of(lab)
    lab.stop()
    with pytest.raises(BackupError, match="pg_restore could not read"):
        _restore_postgres(broken, lab.settings)
    lab.start()
    assert _snapshot_of(lab) == before
