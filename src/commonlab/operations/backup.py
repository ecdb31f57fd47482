"""Backups of a running facility, and their restore into a stopped one.

`backup` copies the database in one consistent snapshot (SQLite's backup API; `pg_dump` on a
snapshot exported by the transaction that also reads the record's head), then the object
store and the keys, and writes last a manifest with every file's SHA-256 and the signed
checkpoint the snapshot holds, so a witness can check what a backup would bring back.
`restore` checks every hash before it writes anything. What it never writes is the latest
checkpoint a witness cosigned (`witnessed.json` in the home, record/witnessed.py): restored
from an older backup, the facility then refuses to start on a log that lost entries."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from commonlab.config import Settings
from commonlab.errors import CommonlabError
from commonlab.facility import RUNNING_LOCK
from commonlab.record.note import NoteError, Signer, Verifier
from commonlab.record.witnessed import load_witnessed, witnessed_path

__all__ = [
    "FORMAT",
    "MANIFEST",
    "BackupError",
    "Restored",
    "Saved",
    "backup",
    "restore",
    "verify_backup",
]

FORMAT = "commonlab-backup/1"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_OBJECT = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")
Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class BackupError(CommonlabError):
    """A backup that cannot be taken or restored; nothing was changed."""


@dataclass(frozen=True)
class Saved:
    path: Path
    database: str
    record_size: int
    files: int
    bytes: int


@dataclass(frozen=True)
class Restored:
    taken_at: str
    database: str
    record_size: int
    objects_added: int
    # The latest checkpoint a witness cosigned, when the backup's record is shorter: the
    # facility will refuse to start on it (unless forced).
    witnessed_size: int | None


# Backup ---------------------------------------------------------------------------------------


def backup(settings: Settings, dest: Path, *, progress: Progress | None = None) -> Saved:
    """Copy the facility at `settings` into the new or empty folder `dest`, online."""
    home = settings.home.resolve()
    dest = dest.absolute()
    _check_destination(dest, home)
    kind = _database_kind(settings)
    if kind == "sqlite" and not _sqlite_path(settings).is_file():
        raise BackupError(f"no facility database at {_sqlite_path(settings)}: nothing to back up")
    if not settings.key_path.is_file():
        raise BackupError(f"no record key at {settings.key_path}: is {home} a facility's home?")
    with _not_restoring(home):
        return _take(settings, dest, home, kind, progress)


def _take(
    settings: Settings, dest: Path, home: Path, kind: str, progress: Progress | None
) -> Saved:
    made = not dest.exists()
    try:
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot make {dest}: {exc.strerror}") from None
    files: dict[str, dict[str, Any]] = {}
    try:
        # The store's collector removes an object only under the store's exclusive lock
        # (artifacts/store.py): holding it shared from before the snapshot until the copy
        # ends, nothing the snapshot names can vanish. Objects are named by their content
        # and otherwise only added, so copying them after the snapshot gives a superset of
        # what it names; the extras are garbage the next collection removes.
        with _store_shared(home / "objects"):
            database, record = _snapshot(settings, dest)
            files[database.name] = _file_entry(database)
            for name, source in _keys(settings).items():
                files[f"keys/{name}"] = _copy(source, dest / "keys" / name)
            objects = _objects(home / "objects")
            total = sum(path.stat().st_size for _, path in objects)
            done = 0
            for relative, source in objects:
                files[f"objects/{relative}"] = _copy(source, dest / "objects" / relative)
                done += files[f"objects/{relative}"]["bytes"]
                if progress is not None:
                    progress(done, total)
        manifest = {
            "format": FORMAT,
            "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": kind,
            "origin": _signer(settings).name,
            "verifier_key": _signer(settings).verifier_key(),
            "record": record,
            "files": files,
        }
        _write_new(dest / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    except BaseException as exc:
        # Half a backup must never pass for one, nor stay behind: the folder is left as it
        # was found (new or empty; checked above).
        _empty(dest, remove=made)
        if isinstance(exc, OSError):
            raise BackupError(f"the backup failed: {exc.filename}: {exc.strerror}") from None
        if isinstance(exc, sqlite3.Error):
            raise BackupError(f"the backup failed: SQLite said {exc}") from None
        raise
    return Saved(
        path=dest,
        database=kind,
        record_size=record["size"],
        files=len(files) + 1,
        bytes=sum(entry["bytes"] for entry in files.values()),
    )


@contextlib.contextmanager
def _not_restoring(home: Path) -> Iterator[None]:
    """Held shared, as a running facility holds it: a restore (which holds it exclusively)
    is never copied half done."""
    fd = os.open(home / RUNNING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"a restore is writing {home}: back it up when it has finished"
            ) from None
        yield
    finally:
        os.close(fd)


def _empty(folder: Path, *, remove: bool) -> None:
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _check_destination(dest: Path, home: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(
            f"{dest} exists and is not empty: a backup goes into a new or empty folder"
        )
    if dest.resolve().is_relative_to(home):
        raise BackupError(f"{dest} is inside the home it would copy ({home}): choose another place")


def _snapshot(settings: Settings, dest: Path) -> tuple[Path, dict[str, Any]]:
    """The database, consistent as of one moment, and the record as that moment holds it."""
    if _database_kind(settings) == "sqlite":
        target = dest / "database.sqlite"
        source = sqlite3.connect(f"file:{_sqlite_path(settings)}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            # One step: the whole copy under one read transaction, so one snapshot (in WAL
            # mode writers go on meanwhile).
            source.backup(copy)
            record = _record_state(copy.execute)
        finally:
            source.close()
            copy.close()
        os.chmod(target, 0o600)
        return target, record
    target = dest / "database.pgdump"
    engine = create_engine(settings.db_url, isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            # pg_dump dumps exactly the snapshot this transaction exported, the one the
            # head below is read from; the transaction stays open until it has.
            snapshot = conn.scalar(text("SELECT pg_export_snapshot()"))
            record = _record_state(lambda sql: conn.execute(text(sql)))
            _run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--file",
                    str(target),
                ],
                settings,
                what="pg_dump",
            )
            conn.rollback()
    finally:
        engine.dispose()
    os.chmod(target, 0o600)
    return target, record


def _record_state(execute: Callable[[str], Any]) -> dict[str, Any]:
    """The signed head of the record in a snapshot, with its checkpoint and cosignatures: what
    a witness compares with the checkpoints it verified."""
    size = execute("SELECT size FROM record_head WHERE id = 1").fetchone()
    size = 0 if size is None else int(size[0])
    row = execute(f"SELECT note FROM record_checkpoints WHERE size = {size}").fetchone()
    lines = execute(
        f"SELECT line FROM record_cosignatures WHERE checkpoint_size = {size} ORDER BY id"
    ).fetchall()
    note = (bytes(row[0]).decode() if row else "") + "".join(line[0] for line in lines)
    return {"size": size, "checkpoint": note}


def _keys(settings: Settings) -> dict[str, Path]:
    keys = {"record.key": settings.key_path}
    session = settings.home / "keys" / "session.key"
    if session.is_file():
        keys["session.key"] = session
    return keys


def _objects(root: Path) -> list[tuple[str, Path]]:
    """The store's content-addressed objects (not its open uploads or scratch files)."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob("??/??/*")):
        relative = path.relative_to(root).as_posix()
        if _OBJECT.match(relative) and path.is_file():
            found.append((relative, path))
    return found


@contextlib.contextmanager
def _store_shared(root: Path) -> Iterator[None]:
    lock = root / ".gc.lock"
    if not lock.exists():
        yield
        return
    with lock.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# Restore --------------------------------------------------------------------------------------


def restore(settings: Settings, src: Path, *, progress: Progress | None = None) -> Restored:
    """Put the backup in `src` back into the stopped facility at `settings`.

    Everything is checked before anything is written: the manifest and every file's hash,
    that the backup is of this facility (its record key) and of this kind of database, and
    that no process has the facility open. The database is replaced whole; keys are put
    back; objects the store lacks are added (none is removed)."""
    manifest = verify_backup(src)
    kind = _database_kind(settings)
    if manifest["database"] != kind:
        raise BackupError(
            f"{src} is a backup of a {manifest['database']} database; this facility's is "
            f"{kind}: restore it into a facility on {manifest['database']}"
        )
    _check_same_facility(settings, manifest, src)
    home = settings.home.resolve()
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _put_back(settings, src, manifest, home, progress)
    except OSError as exc:
        raise BackupError(f"the restore failed: {exc.filename}: {exc.strerror}") from None
    except sqlite3.Error as exc:
        raise BackupError(f"the restore failed: SQLite said {exc}") from None


def _put_back(
    settings: Settings,
    src: Path,
    manifest: dict[str, Any],
    home: Path,
    progress: Progress | None,
) -> Restored:
    kind = manifest["database"]
    with _stopped(settings, home):
        if kind == "sqlite":
            _restore_sqlite(src / "database.sqlite", _sqlite_path(settings))
        else:
            _restore_postgres(src / "database.pgdump", settings)
        keys = {"record.key": settings.key_path, "session.key": home / "keys" / "session.key"}
        for name, target in keys.items():
            if f"keys/{name}" in manifest["files"]:
                _put(src / "keys" / name, target)
        objects = sorted(name for name in manifest["files"] if name.startswith("objects/"))
        total = sum(manifest["files"][name]["bytes"] for name in objects)
        added = done = 0
        for name in objects:
            target = home / name
            if not target.is_file():
                _put(src / name, target)
                added += 1
            done += manifest["files"][name]["bytes"]
            if progress is not None:
                progress(done, total)
    witnessed = load_witnessed(witnessed_path(home))
    size = int(manifest["record"]["size"])
    return Restored(
        taken_at=manifest["taken_at"],
        database=kind,
        record_size=size,
        objects_added=added,
        witnessed_size=witnessed.size if witnessed and witnessed.size > size else None,
    )


def verify_backup(src: Path) -> dict[str, Any]:
    if not src.is_dir():
        raise BackupError(f"{src}: no such folder: name the folder `commonlab backup` wrote")
    try:
        manifest = json.loads((src / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(
            f"{src} has no {MANIFEST}: not a commonlab backup, or one that never finished"
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"{src}/{MANIFEST} is damaged ({exc}): this backup cannot be trusted"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{src}/{MANIFEST} is not a {FORMAT} manifest")
    files = manifest.get("files")
    record = manifest.get("record")
    if (
        not isinstance(files, dict)
        or manifest.get("database") not in {"sqlite", "postgresql"}
        or not isinstance(record, dict)
        or not isinstance(record.get("size"), int)
        or not isinstance(manifest.get("verifier_key"), str)
        or not isinstance(manifest.get("taken_at"), str)
    ):
        raise BackupError(f"{src}/{MANIFEST} is damaged: a field is missing or wrong")
    database = "database.sqlite" if manifest["database"] == "sqlite" else "database.pgdump"
    if database not in files or "keys/record.key" not in files:
        raise BackupError(f"{src}/{MANIFEST} lists no {database} or no record key: it is damaged")
    known = {database, "keys/record.key", "keys/session.key"}
    # Only what a backup holds is ever written back: no name may reach elsewhere in the home.
    if strange := sorted(
        name
        for name in files
        if name not in known and not (name.startswith("objects/") and _OBJECT.match(name[8:]))
    ):
        raise BackupError(f"{src}/{MANIFEST} lists {strange[0]!r}, which no backup holds")
    present = {
        path.relative_to(src).as_posix()
        for path in src.rglob("*")
        if path.is_file() or path.is_symlink()
    } - {MANIFEST}
    problems = [f"{name} is missing" for name in sorted(files.keys() - present)]
    problems += [f"{name} is not in the manifest" for name in sorted(present - files.keys())]
    for name in sorted(files.keys() & present):
        path = src / name
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name} is not a plain file")
            continue
        entry = files[name]
        try:
            digest = _sha256(path)
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror}") from None
        if not isinstance(entry, dict) or digest != entry.get("sha256"):
            problems.append(f"{name} does not match its SHA-256 in the manifest")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BackupError(f"{src} is damaged: {problems[0]}{more}; nothing was restored")
    try:
        key = Signer.from_key((src / "keys" / "record.key").read_text().strip())
    except (OSError, UnicodeDecodeError, NoteError):
        raise BackupError(f"{src}/keys/record.key is not a record key: it is damaged") from None
    if key.verifier_key() != manifest["verifier_key"]:
        raise BackupError(f"{src}: its record key is not the one its manifest names")
    return manifest


def _check_same_facility(settings: Settings, manifest: dict[str, Any], src: Path) -> None:
    """A backup goes back into the home of the facility it was taken from (or a new one)."""
    try:
        backed_up = Verifier.from_key(manifest["verifier_key"])
    except (NoteError, ValueError):
        raise BackupError(f"{src}/{MANIFEST}: its verifier key is not one") from None
    if not settings.key_path.is_file():
        return
    try:
        ours = Signer.from_key(settings.key_path.read_text().strip()).verifier_key()
    except (OSError, NoteError) as exc:
        raise BackupError(f"{settings.key_path}: cannot read this facility's key ({exc})") from None
    if ours != manifest["verifier_key"]:
        raise BackupError(
            f"{src} is a backup of another facility ({backed_up.name}, key "
            f"{backed_up.key_id:08x}) than this one ({settings.key_path} holds another key): "
            "restore it into that facility's home, or an empty one"
        )


@contextlib.contextmanager
def _stopped(settings: Settings, home: Path) -> Iterator[None]:
    """Hold the home's running lock exclusively while restoring: refused while any process
    has the facility open, and no facility starts meanwhile (facility.py: RUNNING_LOCK)."""
    fd = os.open(home / RUNNING_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"the facility in {home} is running (a process holds {home / RUNNING_LOCK}): "
                "stop it before restoring; nothing was restored"
            ) from None
        if _database_kind(settings) == "postgresql":
            _check_no_sessions(settings)
        yield
    finally:
        os.close(fd)


def _check_no_sessions(settings: Settings) -> None:
    """Workers on other hosts share the database, not this home's lock: any other session
    on the database means the facility still runs somewhere."""
    engine = create_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            others = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
    except SQLAlchemyError as exc:
        raise BackupError(
            f"cannot connect to the database to restore into: {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()
    if others:
        raise BackupError(
            f"{others} other session(s) are connected to the facility's database: stop every "
            "worker, on every host, before restoring; nothing was restored"
        )


def _restore_sqlite(source: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    live = sqlite3.connect(target)
    try:
        # Through SQLite, page by page into the live file: its journal and WAL stay
        # coherent, which copying the file over them would not guarantee.
        backup_db.backup(live)
        live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        backup_db.close()
        live.close()
    os.chmod(target, 0o600)


def _restore_postgres(dump: Path, settings: Settings) -> None:
    """Replace the database's schema with the dump's, in one transaction: a failure leaves
    the database as it was. The schema is emptied first, so tables a later migration added
    do not outlive the restore of an older backup."""
    load = [_tool("psql"), "--single-transaction", "--quiet", "-v", "ON_ERROR_STOP=1"]
    load += ["--command=DROP SCHEMA public CASCADE; CREATE SCHEMA public;", "--file=-"]
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as psql_errors:
        # pg_restore turns the dump into SQL, streamed into psql: never the whole dump in
        # memory. Should pg_restore stop half way, psql is handed a statement that fails, so
        # it rolls back rather than commit half a database over an emptied schema.
        script = subprocess.Popen(
            [_tool("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(dump)],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        url, env = _libpq(settings)
        psql = subprocess.Popen(
            [*load, f"--dbname={url}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
            env=env,
        )
        assert script.stdout is not None and psql.stdin is not None
        try:
            while chunk := script.stdout.read(_CHUNK):
                psql.stdin.write(chunk)
            if script.wait() != 0:
                psql.stdin.write(b"\n;SELECT 'pg_restore failed: rolling back'::int;\n")
            psql.stdin.close()
        except BrokenPipeError:  # psql stopped on an error: it says which below
            pass
        finally:
            script.stdout.close()
            script.wait()
            psql.wait()
        if script.returncode != 0:
            errors.seek(0)
            raise BackupError(f"pg_restore could not read {dump}: {_stderr_line(errors.read())}")
        if psql.returncode != 0:
            psql_errors.seek(0)
            raise BackupError(f"psql failed: {_stderr_line(psql_errors.read())}")


def _put(source: Path, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    shutil.copyfile(source, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


# Shared -----------------------------------------------------------------------------------------


def _database_kind(settings: Settings) -> str:
    return "postgresql" if settings.db_url.startswith("postgresql") else "sqlite"


def _sqlite_path(settings: Settings) -> Path:
    return Path(make_url(settings.db_url).database or "")


def _signer(settings: Settings) -> Signer:
    return Signer.from_key(settings.key_path.read_text().strip())


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools")
    return path


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database's URL for PostgreSQL's client tools, and their environment: the password
    goes there, never on a command line others can read."""
    url = make_url(settings.db_url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(), env


def _run(argv: list[str], settings: Settings, *, what: str) -> None:
    """Run a PostgreSQL client tool on the facility's database."""
    url, env = _libpq(settings)
    done = subprocess.run(
        [*argv, f"--dbname={url}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {_stderr_line(done.stderr)}")


def _stderr_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _copy(source: Path, target: Path) -> dict[str, Any]:
    """Copy a file, hashing it as it goes (one read)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "bytes": size}


def _write_new(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
