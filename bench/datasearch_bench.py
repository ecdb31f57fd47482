"""Benchmark of the exact training-data index (issue 18). Prints figures; asserts nothing.

    python bench/datasearch_bench.py [--tokens 1e9] [--dir DIR] [--queries 2000] [--reuse]

Builds an index over synthetic data (Zipf-distributed token ids over GPT-2's 50,257-token
vocabulary, in records of 100 to 599 tokens, seeded), then reports build time and peak
memory, bytes per token on disk, and count and locate latency p50/p99 over queries of 1 to
10 tokens drawn from the data (they hit) and random ones (absent), with the page cache warm
(each file read once; each query new to the process, then the same queries again) and, for
a sample, cold (the index's pages evicted with posix_fadvise before each query).
Beside it, in the same run, a plain scan: Python's `bytes.count` over every shard's
big-endian token bytes, held in memory.

The published anchor, not measured here: infini-gram (Liu et al. 2024) takes about 7 bytes
per token (2 for the token, 5 for its suffix pointer) and about 20 ms per count query.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from commonlab.datasearch import BuildProgress, ExactIndex, build_index
from commonlab.datasearch.layout import MANIFEST, TOKEN_DTYPE, shard_files

VOCAB_SIZE = 50_257  # GPT-2's
ZIPF_EXPONENT = 1.0  # word frequencies in text are close to 1/rank
RECORD_TOKENS = (100, 600)  # a record's length, uniform in [low, high)


class Clock:
    """Time spent inside the data generator, so the build's own time can be told apart."""

    def __init__(self) -> None:
        self.seconds = 0.0


def synthetic_records(tokens: int, *, seed: int, clock: Clock) -> Iterator[np.ndarray]:
    """Records totalling `tokens` ids, drawn by rank from a Zipf law; ranks map to ids
    through a fixed shuffle so frequent tokens are not simply the small ids."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, VOCAB_SIZE + 1) ** ZIPF_EXPONENT
    cumulative = np.cumsum(weights / weights.sum())
    id_of_rank = rng.permutation(VOCAB_SIZE).astype(np.uint16)
    left = tokens
    while left > 0:
        started = time.perf_counter()
        block = min(left, 1 << 22)
        ids = id_of_rank[np.searchsorted(cumulative, rng.random(block), side="right")]
        lengths = rng.integers(*RECORD_TOKENS, size=block // RECORD_TOKENS[0] + 1)
        cuts = np.cumsum(lengths)
        cuts = cuts[cuts < block]
        left -= block
        clock.seconds += time.perf_counter() - started
        yield from np.split(ids, cuts)


def build(directory: Path, tokens: int, seed: int) -> dict[str, float]:
    clock = Clock()
    started = time.perf_counter()

    def report(progress: BuildProgress) -> None:
        if progress.shards % 10 == 0:
            print(
                f"  {progress.shards} shards, {progress.tokens / 1e6:,.0f}M tokens, "
                f"{time.perf_counter() - started:,.0f} s",
                flush=True,
            )

    build_index(
        synthetic_records(tokens, seed=seed, clock=clock),
        directory,
        vocab_size=VOCAB_SIZE,
        progress=report,
    )
    wall = time.perf_counter() - started
    return {
        "generate_s": clock.seconds,
        "build_s": wall - clock.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def make_queries(
    index: ExactIndex, count: int, *, seed: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Nine in ten drawn from records (so they hit), the rest random ids (almost surely
    absent; those found are dropped)."""
    rng = np.random.default_rng(seed + 1)
    present = []
    while len(present) < count * 9 // 10:
        record = index.record(int(rng.integers(0, index.manifest.records)))
        length = int(rng.integers(1, 11))
        if len(record) >= length:
            start = int(rng.integers(0, len(record) - length + 1))
            present.append(list(record[start : start + length]))
    absent = [
        query
        for query in (
            rng.integers(0, VOCAB_SIZE, size=int(rng.integers(2, 11))).tolist()
            for _ in range(count - len(present))
        )
        if index.count(query) == 0
    ]
    return present, absent


def timed(function, queries: list[list[int]]) -> list[tuple[float, float]]:
    """Milliseconds per call, one call per query: wall-clock time, and the CPU time of this
    thread (which leaves out time spent waiting for a core on a shared machine)."""
    times = []
    for query in queries:
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        function(query)
        times.append(
            ((time.perf_counter_ns() - started) / 1e6, (time.thread_time_ns() - started_cpu) / 1e6)
        )
    return times


def percentiles(times: list[tuple[float, float]]) -> str:
    if not times:
        return "none"

    def summary(values: list[float]) -> str:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"p50 {statistics.median(ordered):.3f}, p99 {p99:.3f}, max {ordered[-1]:.3f} ms"

    wall = summary([took for took, _ in times])
    cpu = summary([cpu for _, cpu in times])
    return f"{wall} (CPU: {cpu}) n={len(times)}"


def evict(directory: Path) -> None:
    """Drop the index's pages from the page cache (its own files only, no root needed)."""
    for path in directory.iterdir():
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def preload(directory: Path) -> None:
    """Read every file of the index once, so its pages are in the page cache."""
    for path in directory.iterdir():
        with path.open("rb") as file:
            while file.read(1 << 24):
                pass


def cold_counts(directory: Path, queries: list[list[int]]) -> list[float]:
    times = []
    for query in queries:
        evict(directory)
        with ExactIndex(directory) as index:
            times += timed(index.count, [query])
    return times


def scan_counts(directory: Path, index: ExactIndex, queries: list[list[int]]) -> list[float]:
    """The baseline: `bytes.count` over all shards' big-endian bytes, loaded in memory.

    It counts byte matches at any offset and without overlaps, so its counts are not exact;
    an exact scan would do more work, not less."""
    shards = [shard_files(directory, shard.name)[0].read_bytes() for shard in index.manifest.shards]

    def count(query: list[int]) -> int:
        key = np.asarray(query, dtype=TOKEN_DTYPE).tobytes()
        return sum(shard.count(key) for shard in shards)

    return timed(count, queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=float, default=1e9)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/commonlab-datasearch-bench"))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=20, help="queries timed with a cold cache")
    parser.add_argument("--scan", type=int, default=20, help="queries timed by the plain scan")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--reuse", action="store_true", help="query an index built before")
    arguments = parser.parse_args()
    tokens, directory = int(arguments.tokens), arguments.dir

    print(f"{tokens:,} tokens, Zipf({ZIPF_EXPONENT}) over {VOCAB_SIZE:,} ids, into {directory}")
    if arguments.reuse and (directory / MANIFEST).is_file():
        print("build: reusing the index built before")
    else:
        shutil.rmtree(directory, ignore_errors=True)
        figures = build(directory, tokens, arguments.seed)
        print(
            f"build: {figures['build_s']:,.1f} s (+ {figures['generate_s']:,.1f} s generating "
            f"the data), peak RSS {figures['peak_rss_mb']:,.0f} MB"
        )

    with ExactIndex(directory) as index:
        manifest = index.manifest
        parts = {"tokens": 0, "sa": 0, "offsets": 0}
        for shard in manifest.shards:
            for part, path in zip(parts, shard_files(directory, shard.name), strict=True):
                parts[part] += path.stat().st_size
        print(
            f"index: {manifest.tokens:,} tokens, {manifest.records:,} records, "
            f"{len(manifest.shards)} shards, {manifest.bytes:,} bytes = "
            f"{manifest.bytes_per_token:.3f} bytes/token ("
            + ", ".join(f"{part} {size / manifest.tokens:.3f}" for part, size in parts.items())
            + ")"
        )

        present, absent = make_queries(index, arguments.queries, seed=arguments.seed)
        every = present + absent

    preload(directory)
    # A fresh mapping: each query below is new to this process, as a user's query would be,
    # though every page of the index is in the page cache.
    with ExactIndex(directory) as index:
        present_times, absent_times = timed(index.count, present), timed(index.count, absent)
        print(f"count, warm cache, all:      {percentiles(present_times + absent_times)}")
        print(f"count, warm cache, present:  {percentiles(present_times)}")
        print(f"count, warm cache, absent:   {percentiles(absent_times)}")
        by_length: dict[str, list[float]] = {"1": [], "2-4": [], "5-10": []}
        for query, took in zip(present, present_times, strict=True):
            by_length["1" if len(query) == 1 else "2-4" if len(query) <= 4 else "5-10"].append(took)
        for label, times in by_length.items():
            print(f"count, warm cache, {label:>4} tokens: {percentiles(times)}")
        print(f"count, the same queries again: {percentiles(timed(index.count, every))}")
        hits = [index.count(query) for query in present]
        print(
            f"  matches per present query: median {statistics.median(hits):,.0f}, max {max(hits):,}"
        )
        locate_times = timed(lambda query: index.locate(query, limit=10), present)
        print(f"locate (limit 10), warm cache: {percentiles(locate_times)}")

        sample = every[:: max(1, len(every) // arguments.scan)][: arguments.scan]
        scan_times = scan_counts(directory, index, sample)
        index_times = timed(index.count, sample)
        print(f"plain scan (bytes.count over all shards, in memory): {percentiles(scan_times)}")
        print(f"  the index on the same {len(sample)} queries: {percentiles(index_times)}")
    started = time.perf_counter()
    with ExactIndex(directory, populate=True) as index:
        opened = time.perf_counter() - started
        print(f"opened with every page mapped (populate=True): {opened:.1f} s")
        print(f"count, populated, all:       {percentiles(timed(index.count, every))}")
        print(f"count, populated, present:   {percentiles(timed(index.count, present))}")
        locate_times = timed(lambda query: index.locate(query, limit=10), present)
        print(f"locate (limit 10), populated: {percentiles(locate_times)}")
    print(f"count, cold page cache: {percentiles(cold_counts(directory, every[: arguments.cold]))}")
    print("anchor (published, not measured here): infini-gram ~7 bytes/token, ~20 ms per count")


if __name__ == "__main__":
    main()
