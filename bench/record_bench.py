"""Benchmarks of the public record (issue: the public record). Prints figures; asserts nothing.

    python bench/record_bench.py append   [--db URL] [--entries N] [--batch B]
    python bench/record_bench.py proofs   [--size N] [--samples K]
    python bench/record_bench.py latency  [--db URL] [--commits K]

Each measures a baseline in the same run: a bare INSERT of the same rows beside
`record.append`, and `record.append` with its rows inserted as before issue 20 (SQLAlchemy
Core, kept here as `_insert_entries_before`); proofs from an uncached tile reader beside the
cached one; a sequencer that only ticks beside one woken by each commit.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text

from commonlab import record
from commonlab.config import Settings
from commonlab.db import Database, utcnow
from commonlab.facility import open_facility
from commonlab.migrations import migrate
from commonlab.policy.principal import SYSTEM
from commonlab.record import service as record_service
from commonlab.record.canonical import canonical_json
from commonlab.record.fields import Fields, declare
from commonlab.record.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from commonlab.record.models import Checkpoint, Entry, Tile
from commonlab.record.sequencer import Sequencer, sequence
from commonlab.record.store import ProofReader
from commonlab.record.tiles import TILE_WIDTH, inner_hashes, new_tile_contents


class BenchEvent(StrEnum):
    Append = "bench:append"
    Latency = "bench:latency"


# record.append refuses an undeclared event type (record/fields.py).
declare(
    BenchEvent,
    {
        BenchEvent.Append: Fields("allocation", "hours", "class"),
        BenchEvent.Latency: Fields("i"),
    },
)


def _facility(db_url: str | None, home: Path, **extra: object):
    settings = Settings(home=home, database_url=db_url or "", **extra)
    return settings, open_facility(settings)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# append ----------------------------------------------------------------------------------------


def bench_append(db_url: str | None, entries: int, batch: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, facility = _facility(db_url, Path(tmp) / "home")
        dialect = facility.db.engine.dialect.name
        data = [{"allocation": f"a-{i}", "hours": i % 997, "class": "H100"} for i in range(entries)]

        # Baseline: the same rows inserted bare (body and leaf hash precomputed, no record API).
        rows = []
        now = utcnow()
        for i, d in enumerate(data):
            body = canonical_json(
                {
                    "type": "bench:bare",
                    "time": "t",
                    "actor": {"id": "system"},
                    "subject": f"s/{i}",
                    "data": d,
                }
            )
            rows.append(
                {
                    "type": "bench:bare",
                    "subject": f"s/{i}",
                    "time": now,
                    "body": body,
                    "leaf_hash": leaf_hash(body),
                }
            )
        start = time.perf_counter()
        with facility.db.session() as session:
            for i in range(0, entries, batch):
                with session.begin():
                    session.execute(insert(Entry), rows[i : i + batch])
        bare = entries / (time.perf_counter() - start)
        # Both runs start from an empty log: index growth must not favour either.
        _empty_the_record(facility)

        def appends() -> float:
            start = time.perf_counter()
            with facility.db.session() as session:
                for i in range(0, entries, batch):
                    with session.begin():
                        for j, d in enumerate(data[i : i + batch]):
                            record.append(
                                session, BenchEvent.Append, actor=SYSTEM, subject=f"s/{i + j}",
                                data=d,
                            )  # fmt: skip
            return entries / (time.perf_counter() - start)

        current = record_service._insert_entries
        record_service._insert_entries = _insert_entries_before
        try:
            appended_before = appends()
        finally:
            record_service._insert_entries = current
        _empty_the_record(facility)
        appended = appends()

        start = time.perf_counter()
        with facility.db.session() as session:
            total = 0
            while done := sequence(session, facility.signer):
                total += done
        sequenced = total / (time.perf_counter() - start)
        facility.close()
    print(f"append [{dialect}] {entries} entries, {batch} per transaction")
    print(f"  bare INSERT (baseline)        {bare:12,.0f} entries/s")
    print(f"  record.append + commit, before{appended_before:12,.0f} entries/s")
    print(f"  record.append + commit        {appended:12,.0f} entries/s")
    print(f"  sequencer (tiles + signing)   {sequenced:12,.0f} entries/s")


def _insert_entries_before(db, rows) -> None:
    """How `record.append` inserted its rows before issue 20: SQLAlchemy Core's executemany,
    each value through the column type's conversion (the baseline)."""
    db.execute(insert(Entry.__table__), rows)


def _empty_the_record(facility) -> None:
    tables = (
        "record_private_openings, record_cosignatures, record_checkpoints, "
        "record_tiles, record_entries"
    )
    with facility.db.engine.begin() as conn:
        if facility.db.is_sqlite:
            for table in tables.split(", "):
                conn.execute(text(f"DELETE FROM {table}"))
        else:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        conn.execute(text("UPDATE record_head SET size = 0, root_hash = :r"), {"r": EMPTY_ROOT})


# proofs ----------------------------------------------------------------------------------------


def bench_proofs(size: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/proofs.db")
        migrate(db.engine)
        print(f"building a tree of {size:,} leaves in tiles ...", file=sys.stderr)
        start = time.perf_counter()
        partial: dict[tuple[int, int], bytes] = {}
        chunk = 256 * 400
        done = 0
        with db.session() as session:
            while done < size:
                n = min(chunk, size - done)
                leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(done, done + n)]
                tiles = new_tile_contents(done, leaves, get_tile=lambda lv, ix: partial[(lv, ix)])
                with session.begin():
                    for level, index in tiles.keys() & partial.keys():  # tiles that grew
                        session.execute(delete(Tile).where(Tile.level == level, Tile.idx == index))
                    session.execute(
                        insert(Tile),
                        [
                            {
                                "level": lv,
                                "idx": ix,
                                "hashes": h,
                                "inner": inner_hashes(h) if len(h) == TILE_WIDTH * 32 else None,
                            }
                            for (lv, ix), h in tiles.items()
                        ],
                    )
                for key, data in tiles.items():
                    if len(data) < TILE_WIDTH * 32:
                        partial[key] = data
                    else:
                        partial.pop(key, None)
                done += n
        print(f"built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rng = random.Random(1)
        with db.session() as session:
            for label, reader in (
                ("uncached tile reads (baseline)", ProofReader(cache_tiles=0)),
                ("cached tile reader", ProofReader()),
            ):
                root = reader.root(session, size)
                incl, cons = [], []
                for _ in range(samples):
                    index = rng.randrange(size)
                    t = time.perf_counter()
                    proof = reader.inclusion(session, index, size)
                    incl.append(time.perf_counter() - t)
                    verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, size, proof, root)
                    old = rng.randrange(1, size)
                    t = time.perf_counter()
                    proof = reader.consistency(session, old, size)
                    cons.append(time.perf_counter() - t)
                    verify_consistency(old, size, proof, reader.root(session, old), root)
                print(f"proofs at {size:,} entries, {samples} random each — {label}")
                for name, values in (("inclusion", incl), ("consistency", cons)):
                    print(
                        f"  {name:12} p50 {1e3 * statistics.median(values):7.3f} ms   "
                        f"p99 {1e3 * _percentile(values, 0.99):7.3f} ms"
                    )
        db.dispose()


# latency ---------------------------------------------------------------------------------------


def bench_latency(db_url: str | None, commits: int) -> None:
    for label, wake in (("tick only, 50 ms (baseline)", False), ("woken by commit", True)):
        with tempfile.TemporaryDirectory() as tmp:
            settings, facility = _facility(db_url, Path(tmp) / "home", sequencer_interval_ms=50)
            sequencer = Sequencer(
                facility.db, facility.signer, settings=settings, wake_on_commit=wake
            )
            sequencer.start()
            latencies = []
            with facility.db.session() as session:
                for i in range(commits):
                    with session.begin():
                        entry = record.append(
                            session, BenchEvent.Latency, actor=SYSTEM, subject="s", data={"i": i}
                        )
                    committed = time.perf_counter()
                    while True:
                        with session.begin():
                            seq = session.scalar(
                                select(Entry.seq).where(Entry.leaf_hash == entry.leaf_hash)
                            )
                            covered = (
                                seq is not None
                                and session.scalar(select(func.max(Checkpoint.size))) > seq
                            )
                        if covered:
                            break
                        time.sleep(0.0005)
                    latencies.append(time.perf_counter() - committed)
                    time.sleep(random.uniform(0, 0.01))
            sequencer.stop()
            facility.close()
            dialect = facility.db.engine.dialect.name
        print(f"commit → signed checkpoint [{dialect}] {commits} commits — {label}")
        print(
            f"  p50 {1e3 * statistics.median(latencies):7.2f} ms   "
            f"p99 {1e3 * _percentile(latencies, 0.99):7.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["append", "proofs", "latency"])
    parser.add_argument("--db", default=os.environ.get("COMMONLAB_BENCH_DATABASE_URL"))
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    if args.what == "append":
        bench_append(args.db, args.entries, args.batch)
    elif args.what == "proofs":
        bench_proofs(args.size, args.samples)
    else:
        bench_latency(args.db, args.commits)


if __name__ == "__main__":
    main()
