"""Training-data search tables: the index jobs in flight, the opt-outs data owners filed,
and the records each opt-out matched (the deletion list every search honours at once).

An index itself is an artifact (a dataset version linked `indexes` to what it indexes);
nothing about its content lives here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["IndexBuild", "OptOut", "OptOutMatch"]


class IndexBuild(Base):
    """An index job admitted for a dataset version: a search of that version while the job
    runs says the index is being built, and by which job."""

    __tablename__ = "datasearch_builds"

    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptOut(Base):
    """A data owner's request that content be left out of training data from now on: by a
    passage, a content hash (a record's text, or a whole file) or a source URL pattern.
    `state` is `filed` until an operator decides; `rejected` ones are no longer honoured."""

    __tablename__ = "datasearch_optouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    # The passage, digest or pattern as filed: private (the record holds a commitment).
    value: Mapped[str] = mapped_column(Text)
    value_sha256: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(10), default="filed")
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    matches: Mapped[list[OptOutMatch]] = relationship(
        back_populates="optout", order_by="OptOutMatch.id"
    )


class OptOutMatch(Base):
    """One record an opt-out matched when it was filed: where it is (dataset version, file,
    record number as the records API numbers it) and its content digest, so later versions
    holding the same content drop it too."""

    __tablename__ = "datasearch_optout_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    optout_id: Mapped[int] = mapped_column(ForeignKey("datasearch_optouts.id"), index=True)
    dataset: Mapped[str] = mapped_column(String(300), index=True)
    file: Mapped[str] = mapped_column(String(1024))
    record: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    optout: Mapped[OptOut] = relationship(back_populates="matches")
