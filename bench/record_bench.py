"""Benchmarks of the public record (issue: the public record). Prints figures; asserts nothing.

    python bench/record_bench.py append   [--db URL] [--entries N] [--batch B] [--rounds R]
    python bench/record_bench.py proofs   [--size N] [--samples K] [--tree FILE]
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
from collections import OrderedDict
from enum import StrEnum
from pathlib import Path

from sqlalchemy import bindparam, delete, func, insert, select, text

from commonlab import record
from commonlab.config import Settings
from commonlab.db import Database, utcnow
from commonlab.facility import open_facility
from commonlab.migrations import migrate
from commonlab.policy.principal import SYSTEM
from commonlab.record import merkle
from commonlab.record import service as record_service
from commonlab.record.canonical import canonical_json
from commonlab.record.fields import Fields, declare
from commonlab.record.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from commonlab.record.models import Checkpoint, Entry, Tile
from commonlab.record.sequencer import Sequencer, sequence
from commonlab.record.store import ProofReader
from commonlab.record.tiles import TILE_HEIGHT, TILE_WIDTH, inner_hashes, new_tile_contents


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


def bench_append(db_url: str | None, entries: int, batch: int, rounds: int) -> None:
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

        def bare() -> None:
            with facility.db.session() as session:
                for i in range(0, entries, batch):
                    with session.begin():
                        session.execute(insert(Entry), rows[i : i + batch])

        def appends() -> None:
            with facility.db.session() as session:
                for i in range(0, entries, batch):
                    with session.begin():
                        for j, d in enumerate(data[i : i + batch]):
                            record.append(
                                session, BenchEvent.Append, actor=SYSTEM, subject=f"s/{i + j}",
                                data=d,
                            )  # fmt: skip

        def appends_before() -> None:
            current = record_service._insert_entries
            record_service._insert_entries = _insert_entries_before
            try:
                appends()
            finally:
                record_service._insert_entries = current

        # Rounds in turns, each variant from an empty log (index growth must favour none), so a
        # machine that gets busier midway weighs on all; the median round of each is shown.
        variants = {
            "bare INSERT (baseline)": bare,
            "record.append + commit, before": appends_before,
            "record.append + commit": appends,
        }
        rates: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
        for _ in range(rounds):
            for label, run in variants.items():
                _empty_the_record(facility)
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                rates[label].append(
                    (entries / (time.perf_counter() - wall), entries / (time.process_time() - cpu))
                )
        wall, cpu = time.perf_counter(), time.process_time()
        with facility.db.session() as session:
            total = 0
            while done := sequence(session, facility.signer):
                total += done
        rates["sequencer (tiles + signing)"] = [
            (total / (time.perf_counter() - wall), total / (time.process_time() - cpu))
        ]
        facility.close()
    load = os.getloadavg()[0]
    print(f"append [{dialect}] {entries} entries, {batch} per transaction, median of {rounds} "
          f"rounds (load average {load:.1f})")  # fmt: skip
    for label, measured in rates.items():
        wall_rate = statistics.median(r[0] for r in measured)
        cpu_rate = statistics.median(r[1] for r in measured)
        print(f"  {label:32} {wall_rate:9,.0f} entries/s   per second of this process's CPU: "
              f"{cpu_rate:9,.0f}")  # fmt: skip


def _insert_entries_before(db, pending) -> None:
    """How `record.append` inserted its rows before issue 20: SQLAlchemy Core's executemany,
    each value through the column type's conversion (the baseline)."""
    db.execute(insert(Entry.__table__), [entry.row for entry in pending])


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


class _TileReaderBefore:
    """The cached proof path before issue 20, kept as the baseline: tiles read through the
    session's compiled select, a full tile's levels as row views sliced when read, every
    node's range split into full subtrees before it is read (`record/tiles.py`,
    `record/store.py` and `merkle._range_hash` at 1b68185)."""

    class _Row:
        __slots__ = ("_count", "_data", "_start")

        def __init__(self, data: bytes, start: int, count: int) -> None:
            self._data, self._start, self._count = data, start, count

        def __len__(self) -> int:
            return self._count

        def __getitem__(self, i: int) -> bytes:
            if not 0 <= i < self._count:
                raise IndexError(i)
            at = self._start + i * HASH_SIZE
            return self._data[at : at + HASH_SIZE]

    _TILE = select(Tile.hashes, Tile.inner).where(
        Tile.level == bindparam("level"), Tile.idx == bindparam("idx")
    )

    def __init__(self, cache_tiles: int = 4096) -> None:
        self._cache: OrderedDict[tuple[int, int], list] = OrderedDict()
        self._cache_tiles = cache_tiles
        self._db = None

    def inclusion(self, db, index: int, size: int) -> list[bytes]:
        self._db = db
        return [self._range_hash(r) for r in merkle._inclusion_ranges(index, size)]

    def consistency(self, db, old_size: int, new_size: int) -> list[bytes]:
        self._db = db
        return [self._range_hash(r) for r in merkle._consistency_ranges(old_size, new_size)]

    def root(self, db, size: int) -> bytes:
        self._db = db
        return self._range_hash((0, size))

    def _range_hash(self, rng: tuple[int, int]) -> bytes:
        hashes = [
            merkle._checked(self.read(level, index), level, index)
            for level, index in merkle._subtrees(*rng)
        ]
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def read(self, level: int, index: int) -> bytes:
        tile_level, r = divmod(level, TILE_HEIGHT)
        tile_index, offset = divmod(index << r, TILE_WIDTH)
        levels = self._levels(tile_level, tile_index, need=offset + (1 << r))
        while len(levels) <= r:
            prev = levels[-1]
            levels.append([node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)])
        return levels[r][offset >> r]

    def _levels(self, tile_level: int, tile_index: int, *, need: int) -> list:
        key = (tile_level, tile_index)
        levels = self._cache.get(key)
        if levels is not None and len(levels[0]) >= need:
            self._cache.move_to_end(key)
            return levels
        row = self._db.execute(self._TILE, {"level": tile_level, "idx": tile_index}).first()
        data, inner = row[0], row[1]
        if inner is not None and len(data) == TILE_WIDTH * HASH_SIZE:
            levels = [self._Row(data, 0, TILE_WIDTH)]
            at, width = 0, TILE_WIDTH // 2
            while width:
                levels.append(self._Row(inner, at, width))
                at, width = at + width * HASH_SIZE, width // 2
        else:
            levels = [[data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]]
        if self._cache_tiles > 0:
            self._cache[key] = levels
            if len(self._cache) > self._cache_tiles:
                self._cache.popitem(last=False)
        return levels


def _build_tree(path: Path, size: int) -> Database:
    """A tile table of `size` leaves in SQLite at `path`; one built before is used again."""
    db = Database(f"sqlite:///{path}")
    migrate(db.engine)
    with db.session() as session, session.begin():
        stored = session.scalar(select(func.count()).select_from(Tile).where(Tile.level == 0))
    if stored == -(-size // TILE_WIDTH):
        print(f"using the tree of {size:,} leaves built before in {path}", file=sys.stderr)
        return db
    print(f"building a tree of {size:,} leaves in tiles ...", file=sys.stderr)
    start = time.perf_counter()
    partial: dict[tuple[int, int], bytes] = {}
    chunk = 256 * 400
    done = 0
    with db.session() as session:
        with session.begin():
            session.execute(delete(Tile))
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
    return db


def bench_proofs(size: int, samples: int, tree: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = _build_tree(tree or Path(tmp) / "proofs.db", size)
        readers = {
            "uncached tile reads (baseline)": ProofReader(cache_tiles=0),
            "cached, before issue 20 (baseline)": _TileReaderBefore(),
            "cached tile reader": ProofReader(),
        }
        # Wall time, and the time this thread was on a CPU (which another process taking the
        # core does not add to: on a busy shared machine, the wall p99 is the scheduler's).
        times = {label: ([], [], [], []) for label in readers}
        rng = random.Random(1)
        with db.session() as session:
            roots = {label: reader.root(session, size) for label, reader in readers.items()}
            assert len(set(roots.values())) == 1, "the readers disagree on the root"
            root = roots["cached tile reader"]
            for n in range(samples):
                index, old = rng.randrange(size), rng.randrange(1, size)
                old_root = readers["cached tile reader"].root(session, old)
                # The readers take turns going first, so a busy moment weighs on each alike.
                order = list(readers.items())
                for label, reader in order[n % 3 :] + order[: n % 3]:
                    incl, cons, incl_cpu, cons_cpu = times[label]
                    t, c = time.perf_counter(), time.thread_time()
                    proof = reader.inclusion(session, index, size)
                    incl.append(time.perf_counter() - t)
                    incl_cpu.append(time.thread_time() - c)
                    verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, size, proof, root)
                    t, c = time.perf_counter(), time.thread_time()
                    proof = reader.consistency(session, old, size)
                    cons.append(time.perf_counter() - t)
                    cons_cpu.append(time.thread_time() - c)
                    verify_consistency(old, size, proof, old_root, root)
        load = os.getloadavg()[0]
        print(f"proofs at {size:,} entries, {samples} random each (load average {load:.1f})")
        for label, (incl, cons, incl_cpu, cons_cpu) in times.items():
            print(f"  {label}")
            for name, wall, cpu in (("inclusion", incl, incl_cpu), ("consistency", cons, cons_cpu)):
                print(
                    f"    {name:12} p50 {1e3 * statistics.median(wall):7.3f} ms   "
                    f"p99 {1e3 * _percentile(wall, 0.99):7.3f} ms   on CPU: "
                    f"p50 {1e3 * statistics.median(cpu):7.3f} ms   "
                    f"p99 {1e3 * _percentile(cpu, 0.99):7.3f} ms"
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
    parser.add_argument("--rounds", type=int, default=3, help="append: rounds of each variant")
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--tree", type=Path, help="proofs: keep the built tree in this file")
    args = parser.parse_args()
    if args.what == "append":
        bench_append(args.db, args.entries, args.batch, args.rounds)
    elif args.what == "proofs":
        bench_proofs(args.size, args.samples, args.tree)
    else:
        bench_latency(args.db, args.commits)


if __name__ == "__main__":
    main()
