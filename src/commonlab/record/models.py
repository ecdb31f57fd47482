"""Record tables: entries, the private openings of their commitments, the tree's tiles, the
head of the log, checkpoints and witness cosignatures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["Checkpoint", "Cosignature", "Entry", "Head", "PrivateOpening", "Tile", "Witness"]

# SQLite only autoincrements INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Entry(Base):
    """One log entry. `seq` (its index in the log) is set by the sequencer after commit."""

    __tablename__ = "record_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(80), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The canonical JSON bytes exactly as hashed into the tree: never re-serialised.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)


class PrivateOpening(Base):
    """The salt and value behind a commitment in an entry. Never served to the public."""

    __tablename__ = "record_private_openings"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("record_entries.id"), index=True)
    field: Mapped[str] = mapped_column(String(100))
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    value: Mapped[bytes] = mapped_column(LargeBinary)


class Tile(Base):
    """A tlog tile's bottom row of hashes (up to 256 × 32 bytes); it only ever grows."""

    __tablename__ = "record_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)
    # A full tile's inner hashes (tiles.inner_hashes), so proofs never rehash a stored tile.
    inner: Mapped[bytes | None] = mapped_column(LargeBinary)


class Head(Base):
    """The single row the sequencer locks: the tree size and root it last signed."""

    __tablename__ = "record_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkpoint(Base):
    """A signed checkpoint (C2SP tlog-checkpoint in a signed note), one per sequenced size."""

    __tablename__ = "record_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cosignature(Base):
    """A witness's cosignature line (C2SP tlog-cosignature) over one checkpoint."""

    __tablename__ = "record_cosignatures"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_size: Mapped[int] = mapped_column(ForeignKey("record_checkpoints.size"), index=True)
    witness: Mapped[str] = mapped_column(String(200))
    line: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Witness(Base):
    """A witness key the facility accepts cosignatures from (registered by the council)."""

    __tablename__ = "record_witnesses"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    verifier_key: Mapped[str] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
