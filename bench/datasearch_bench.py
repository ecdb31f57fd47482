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

    python bench/datasearch_bench.py --semantic [--texts 10000] [--vectors 50000] [--worst-case]
                                     [--torch-threads N]

measures semantic search instead (nothing of the exact index): the model's embedding
throughput on this CPU, then recall@10 of the HNSW index against exact brute force on the
same embeddings, with query latency p50/p99 of both, build time and bytes per vector, first
on the embeddings of `--texts` generated sentences (a grammar over ten topics' word lists,
seeded; queries are held-out sentences of the same grammar), then at `--vectors` unit
vectors scattered around one centre per 100 of them (noise as large as the centre), the
shape of embeddings of a corpus on many topics, for build time, latency and size at a
larger scale. With --worst-case those vectors are uniformly random instead: the worst case
for any ANN index, since in 384 dimensions every point is nearly as far from a query as
every other.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from usearch.index import Index

from commonlab.datasearch import BuildProgress, ExactIndex, build_index, semantic
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
    parser.add_argument("--semantic", action="store_true", help="measure semantic search only")
    parser.add_argument("--texts", type=int, default=10_000, help="sentences embedded")
    parser.add_argument("--vectors", type=int, default=50_000, help="synthetic vectors indexed")
    parser.add_argument("--worst-case", action="store_true", help="uniform random vectors")
    parser.add_argument("--semantic-queries", type=int, default=500)
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="threads torch embeds with (0: its default)"
    )
    arguments = parser.parse_args()
    if arguments.semantic:
        if arguments.torch_threads:
            import torch

            torch.set_num_threads(arguments.torch_threads)
        semantic_bench(
            texts=arguments.texts,
            vectors=arguments.vectors,
            queries=arguments.semantic_queries,
            worst_case=arguments.worst_case,
            seed=arguments.seed,
        )
        return
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


# Semantic search ------------------------------------------------------------------------

# Ten topics, each its nouns, verbs and closing phrases: sentences of one topic share words
# and meaning, so their embeddings cluster as a real corpus's do.
TOPICS = {
    "weather": (
        "storm rain cloud wind forecast flood drought heatwave snow temperature",
        "falls rises spreads arrives eases worsens",
        "over the coast;across the valley;in the north;this weekend;near the harbour",
    ),
    "cooking": (
        "soup bread sauce oven recipe onion garlic pastry spice dough",
        "simmers bakes thickens burns rises cools",
        "in the kitchen;for dinner;on a low heat;with fresh herbs;before serving",
    ),
    "football": (
        "striker goalkeeper referee match league penalty midfielder coach stadium fans",
        "scores saves wins loses celebrates concedes",
        "in the final minute;at the stadium;after extra time;in the derby;this season",
    ),
    "finance": (
        "market shares inflation bank loan interest bond investor budget currency",
        "falls climbs recovers stalls doubles shrinks",
        "on Wall Street;after the report;this quarter;in early trading;despite the forecast",
    ),
    "medicine": (
        "patient doctor vaccine trial fever symptom surgery nurse clinic dose",
        "improves recovers worsens responds heals spreads",
        "in the hospital;after treatment;during the trial;at the clinic;within a week",
    ),
    "software": (
        "compiler server database query bug release library function cache kernel",
        "crashes compiles returns fails scales updates",
        "in production;after the upgrade;on every request;under load;in the test suite",
    ),
    "astronomy": (
        "telescope galaxy planet comet orbit star nebula moon eclipse asteroid",
        "appears orbits collides shines fades rotates",
        "in the night sky;beyond the solar system;at dawn;through the lens;near Jupiter",
    ),
    "farming": (
        "tractor harvest wheat cattle soil barn orchard seed farmer irrigation",
        "grows yields ripens fails feeds dries",
        "in the field;before the frost;after the rain;on the hillside;at the market",
    ),
    "music": (
        "orchestra guitar melody concert singer album drummer chorus violin rhythm",
        "plays soars fades echoes opens ends",
        "on stage;in the studio;at the festival;during the encore;on the radio",
    ),
    "law": (
        "judge court verdict appeal lawyer contract witness jury statute ruling",
        "rules objects appeals testifies overturns delays",
        "in court;after the hearing;before the trial;on appeal;under the new statute",
    ),
}
ADJECTIVES = ("old", "new", "small", "large", "quiet", "busy", "sudden", "early", "late", "weak")
LATENCY_QUERIES = 200  # brute force and embedding are timed on this many


def synthetic_sentences(count: int, *, seed: int) -> list[str]:
    """`count` distinct sentences such as "The sudden patient improves within a week while
    the dose spreads.": a topic's adjective, noun, verb and phrase, a second clause half the
    time, and one time in five a noun borrowed from another topic."""
    rng = np.random.default_rng(seed)
    topics = [(n.split(), v.split(), e.split(";")) for n, v, e in TOPICS.values()]
    sentences: dict[str, None] = {}  # insertion-ordered, so the output is seeded
    while len(sentences) < count:
        nouns, verbs, ends = topics[rng.integers(len(topics))]
        if rng.random() < 0.2:
            nouns = nouns + topics[rng.integers(len(topics))][0]
        parts = [f"the {rng.choice(ADJECTIVES)} {rng.choice(nouns)} {rng.choice(verbs)}"]
        parts.append(str(rng.choice(ends)))
        if rng.random() < 0.5:
            parts.append(f"while the {rng.choice(nouns)} {rng.choice(verbs)}")
        sentences[" ".join(parts).capitalize() + "."] = None
    return list(sentences)


def synthetic_unit_vectors(count: int, *, clusters: int, seed: int) -> np.ndarray:
    """`count` unit vectors around `clusters` random centres, with noise of about the
    centre's length; with no clusters, uniformly random on the sphere."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(clusters, 1), semantic.DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = 0.05 if clusters else 1.0
    vectors = np.empty((count, semantic.DIMENSION), dtype=np.float32)
    for start in range(0, count, 1 << 16):  # in blocks: float64 draws of 1M rows are 3 GB
        size = min(1 << 16, count - start)
        block = noise * rng.standard_normal((size, semantic.DIMENSION))
        if clusters:
            block += centres[rng.integers(0, clusters, size=size)]
        vectors[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def recall_at_10(found: list[list[int]], truth: np.ndarray) -> float:
    shared = [len(set(f[:10]) & set(t[:10])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(shared)) / 10


@contextlib.contextmanager
def built(vectors: np.ndarray) -> Iterator[tuple[semantic.SemanticIndex, str]]:
    """The semantic index over `vectors` (record i is row i) in a scratch directory, and a
    line saying its build time and size."""
    with tempfile.TemporaryDirectory(prefix="commonlab-semantic-bench-") as scratch:
        started, started_cpu = time.perf_counter(), time.process_time()
        manifest = semantic.build_from_vectors(np.arange(len(vectors)), vectors, Path(scratch))
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        summary = (
            f"build {wall:,.1f} s (CPU {cpu:,.1f} s, all threads), {manifest.bytes:,} bytes = "
            f"{manifest.bytes_per_vector:,.0f} bytes/vector ({manifest.dtype}, "
            f"M {manifest.connectivity}, ef {manifest.expansion_search})"
        )
        with semantic.SemanticIndex(Path(scratch)) as index:
            yield index, summary


def ann_against_brute_force(label: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    """Recall@10 and latency of the semantic index over `vectors` against brute force over
    the same float32 vectors in memory."""
    rows = list(queries)
    truth = semantic.exact_neighbours(vectors, queries, 10)
    with built(vectors) as (index, summary):
        print(f"{label}: {summary}")
        index.search_vector(rows[0], k=10)  # the first query maps the file's first pages
        found = [[hit.record for hit in index.search_vector(row, k=10)] for row in rows]
        recall = recall_at_10(found, truth)
        print(f"  recall@10 against brute force: {recall:.3f}, {len(rows)} queries")
        ann = timed(lambda row: index.search_vector(row, k=10), rows)
    brute = timed(lambda row: semantic.exact_neighbours(vectors, row, 10), rows[:LATENCY_QUERIES])
    print(f"  ANN query, k=10:         {percentiles(ann)}")
    print(f"  brute force query, k=10: {percentiles(brute)}")


def storage_types(vectors: np.ndarray, queries: np.ndarray) -> None:
    """Recall@10 and size of each storage type, at the module's HNSW settings."""
    truth = semantic.exact_neighbours(vectors, queries, 10)
    for dtype in ("f32", "f16", "i8"):
        index = Index(
            ndim=semantic.DIMENSION,
            metric=semantic.METRIC,
            dtype=dtype,
            connectivity=semantic.CONNECTIVITY,
            expansion_add=semantic.EXPANSION_ADD,
            expansion_search=semantic.EXPANSION_SEARCH,
        )
        index.add(np.arange(len(vectors)), vectors)
        found = index.search(queries, 10).keys.tolist()
        print(
            f"  {dtype}: recall@10 {recall_at_10(found, truth):.3f}, "
            f"{index.serialized_length / len(vectors):,.0f} bytes/vector"
        )


def semantic_bench(*, texts: int, vectors: int, queries: int, worst_case: bool, seed: int) -> None:
    started = time.perf_counter()
    semantic.embed(["load the model"])
    took = time.perf_counter() - started
    print(f"model load (imports, weights and their SHA-256 check): {took:.1f} s")
    sentences = synthetic_sentences(texts + queries, seed=seed)
    print(f"{len(sentences):,} distinct generated sentences, e.g. {sentences[0]!r}")

    semantic.embed(sentences[:256])  # warms up torch's kernels, so the first batch size is fair
    for batch_size in (16, 32, 64, 128):
        started = time.perf_counter()
        semantic.embed(sentences[:1024], batch_size=batch_size)
        rate = 1024 / (time.perf_counter() - started)
        print(f"  embedding, batch {batch_size:>3}: {rate:,.0f} texts/s")
    started, started_cpu = time.perf_counter(), time.process_time()
    embeddings = semantic.embed(sentences)
    took = time.perf_counter() - started
    print(
        f"embedding {len(sentences):,} sentences, batch {semantic.DEFAULT_BATCH_SIZE}: "
        f"{took:,.1f} s = {len(sentences) / took:,.0f} texts/s "
        f"(CPU {time.process_time() - started_cpu:,.1f} s, all threads)"
    )
    one = timed(lambda text: semantic.embed([text]), sentences[:LATENCY_QUERIES])
    print(f"  embedding one query: {percentiles(one)}")

    corpus, held_out = embeddings[:texts], embeddings[texts:]
    ann_against_brute_force(f"{texts:,} sentence embeddings", corpus, held_out)
    storage_types(corpus, held_out)
    with built(corpus) as (index, _):
        asked = sentences[texts : texts + LATENCY_QUERIES]
        whole = timed(lambda text: index.search(text, k=10), asked)
    print(f"  search(text), its embedding included: {percentiles(whole)}")

    if vectors:
        clusters = 0 if worst_case else max(1, vectors // 100)
        # The queries are drawn with the vectors, from the same clusters, and held out.
        points = synthetic_unit_vectors(vectors + queries, clusters=clusters, seed=seed)
        label = (
            f"{vectors:,} uniformly random unit vectors (the worst case)"
            if worst_case
            else f"{vectors:,} unit vectors around {clusters:,} centres"
        )
        ann_against_brute_force(label, points[:vectors], points[vectors:])


if __name__ == "__main__":
    main()
