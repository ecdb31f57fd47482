"""Opening a facility: its home directory, database (migrated), record signing key and
session secret, and the first operator. `commonlab up` and the tests both start here."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from commonlab.config import Settings
from commonlab.db import Database
from commonlab.errors import ConfigError
from commonlab.migrations import migrate
from commonlab.policy import validate_policy_set
from commonlab.record.note import NoteError, Signer, Verifier, generate_signer
from commonlab.record.store import ProofReader

__all__ = ["Facility", "open_facility"]


@dataclass
class Facility:
    settings: Settings
    db: Database
    signer: Signer
    session_secret: bytes
    # Tiles only grow, so one cache serves every request of this process. After restoring
    # a database backup, restart the process: its cache may hold tiles the backup lacks.
    proofs: ProofReader = field(default_factory=ProofReader)

    @property
    def origin(self) -> str:
        return self.signer.name

    def signer_verifier(self) -> Verifier:
        return Verifier.from_key(self.signer.verifier_key())

    def close(self) -> None:
        self.db.dispose()


def open_facility(settings: Settings) -> Facility:
    """Everything a running facility needs, created on first start and reused after."""
    validate_policy_set()
    home = settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"COMMONLAB_HOME={home}: cannot create it ({exc.strerror})") from None
    db = Database(settings.db_url)
    migrate(db.engine)
    signer = _load_or_create_signer(settings)
    secret = _load_or_create_secret(home / "keys" / "session.key")
    return Facility(settings=settings, db=db, signer=signer, session_secret=secret)


def _load_or_create_signer(settings: Settings) -> Signer:
    path = settings.key_path
    if not path.exists():
        if settings.signing_key_path is not None:
            raise ConfigError(f"COMMONLAB_SIGNING_KEY_PATH={path}: no such file")
        skey, _ = generate_signer(settings.origin)
        _write_private(path, skey.encode() + b"\n")
    try:
        signer = Signer.from_key(path.read_text().strip())
    except (OSError, NoteError) as exc:
        raise ConfigError(f"COMMONLAB_SIGNING_KEY_PATH={path}: not a signer key ({exc})") from None
    if settings.log_origin and signer.name != settings.log_origin:
        raise ConfigError(
            f"COMMONLAB_LOG_ORIGIN={settings.log_origin!r}: the signing key is for "
            f"{signer.name!r}; a log keeps its origin for life"
        )
    return signer


def _load_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        _write_private(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
