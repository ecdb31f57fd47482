"""Semantic search finds a passage by its meaning, and its ANN index answers as brute force does.

The model is the real packaged all-MiniLM-L6-v2, loaded once for the module (the slow part:
seconds, mostly importing torch). Recall is measured on clustered vectors, the shape real
embeddings have: on uniformly random unit vectors in 384 dimensions every point is nearly
as far as every other, and no index (nor the question "which ten are nearest") means much.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from commonlab.datasearch.semantic import (
    DIMENSION,
    MAX_K,
    MAX_QUERY_CHARS,
    SEMANTIC_INDEX,
    SEMANTIC_MANIFEST,
    SemanticBuildProgress,
    SemanticIndex,
    build_from_vectors,
    build_semantic_index,
    embed,
    exact_neighbours,
)
from commonlab.errors import InvalidInput, NotFound

BREAD = "Bake a loaf at home: mix flour, water, yeast and salt, let the dough rise, then bake it."
DISTRACTORS = [
    "The striker scored twice in the second half and the home side won the league.",
    "Shares fell sharply after the central bank raised interest rates again.",
    "The compiler crashed on the new release because of a bug in the parser.",
    "A comet will be visible in the night sky near Jupiter this weekend.",
    "The judge overturned the verdict on appeal and ordered a new trial.",
    "Heavy rain and strong wind are forecast along the coast tomorrow.",
    "The orchestra played the symphony to a full concert hall.",
    "Farmers harvested the wheat early, before the first frost.",
]


@pytest.fixture(scope="module")
def corpus_vectors() -> np.ndarray:
    """The embeddings of the bread passage (record 0) and the distractors, computed once:
    this loads the model."""
    return embed([BREAD, *DISTRACTORS])


def clustered_unit_vectors(rng: np.random.Generator, count: int, *, clusters: int) -> np.ndarray:
    """`count` unit vectors scattered around `clusters` random centres (the centre's share of
    each is about that of the noise, as with real embeddings of texts on one topic)."""
    centres = rng.standard_normal((clusters, DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, clusters, size=count)]
    points = points + 0.05 * rng.standard_normal((count, DIMENSION))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_embeddings_are_unit_vectors_of_384_dimensions(corpus_vectors):
    assert corpus_vectors.shape == (1 + len(DISTRACTORS), DIMENSION)
    assert corpus_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(corpus_vectors, axis=1), 1.0, atol=1e-5)
    # Different texts, different directions: not a constant or a hash of the length.
    assert np.abs(corpus_vectors @ corpus_vectors.T - np.eye(len(corpus_vectors))).max() < 0.9


def test_an_embedding_does_not_depend_on_its_batch(corpus_vectors):
    alone = embed([DISTRACTORS[3]], batch_size=1)[0]
    np.testing.assert_allclose(alone, corpus_vectors[4], atol=1e-4)


def test_a_long_text_is_read_only_up_to_the_models_limit(corpus_vectors):
    # The model reads 256 word pieces: what comes after them changes nothing.
    long = " ".join([DISTRACTORS[0]] * 20)  # about 320 word pieces
    first, second = embed([long, long + " " + BREAD * 20])
    np.testing.assert_allclose(first, second, atol=1e-4)


def test_a_question_finds_its_paraphrase_among_distractors(tmp_path, corpus_vectors):
    numbers = [0, *range(3, 3 + len(DISTRACTORS))]  # records 1 and 2 had no text
    build_from_vectors(numbers, corpus_vectors, tmp_path)
    with SemanticIndex(tmp_path) as index:
        hits = index.search("How do I make my own bread?", k=3)
    assert hits[0].record == 0
    assert hits[0].score > hits[1].score >= hits[2].score
    assert all(-1.0 <= hit.score <= 1.0 for hit in hits)


def test_build_from_text_and_open_beside_other_files(tmp_path, corpus_vectors):
    (tmp_path / "manifest.json").write_text("{}")  # the exact index's, left alone
    items = [(0, BREAD), *((number + 3, text) for number, text in enumerate(DISTRACTORS))]
    seen: list[SemanticBuildProgress] = []
    manifest = build_semantic_index(iter(items), tmp_path, progress=seen.append)

    assert (tmp_path / "manifest.json").read_text() == "{}"
    assert seen[-1].vectors == manifest.count == len(items)
    document = json.loads((tmp_path / SEMANTIC_MANIFEST).read_text())
    assert document["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (document["dimension"], document["metric"], document["count"]) == (384, "cos", 9)
    assert manifest.bytes == (tmp_path / SEMANTIC_INDEX).stat().st_size
    with SemanticIndex(tmp_path) as index:
        for row, (number, _) in enumerate(items):
            hit = index.search_vector(corpus_vectors[row], k=1)[0]
            assert hit.record == number
            assert hit.score == pytest.approx(1.0, abs=2e-3)  # half-precision storage
        assert len(index.search("bread", k=MAX_K)) == len(items)  # fewer than k records


def test_recall_at_10_against_brute_force(tmp_path):
    rng = np.random.default_rng(18)
    # Queries come from the same clusters as the records, held out of the index.
    points = clustered_unit_vectors(rng, 4100, clusters=50)
    vectors, queries = points[:4000], points[4000:]
    numbers = np.arange(len(vectors)) * 3 + 7  # record numbers are not row positions
    build_from_vectors(numbers, vectors, tmp_path)
    truth = numbers[exact_neighbours(vectors, queries, 10)]
    with SemanticIndex(tmp_path) as index:
        found = [[hit.record for hit in index.search_vector(query, k=10)] for query in queries]
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95


def test_exact_neighbours_are_the_nearest_by_cosine():
    rng = np.random.default_rng(3)
    vectors = clustered_unit_vectors(rng, 200, clusters=5)
    query = 3 * clustered_unit_vectors(rng, 1, clusters=5)[0]  # a query need not be unit
    cosines = (vectors @ query) / np.linalg.norm(query)
    assert list(exact_neighbours(vectors, query, 5)) == list(np.argsort(-cosines)[:5])
    assert exact_neighbours(vectors, np.stack([query, query]), 5).shape == (2, 5)


def test_a_directory_without_a_semantic_index_says_so(tmp_path):
    with pytest.raises(NotFound, match="holds no semantic index"):
        SemanticIndex(tmp_path)


def test_a_damaged_index_file_says_rebuild(tmp_path):
    rng = np.random.default_rng(0)
    build_from_vectors([0, 1, 2], clustered_unit_vectors(rng, 3, clusters=1), tmp_path)
    (tmp_path / SEMANTIC_INDEX).write_bytes(b"not an index")
    with pytest.raises(InvalidInput, match="rebuild"):
        SemanticIndex(tmp_path)


@pytest.mark.parametrize(
    "manifest",
    ["{", "[]", '{"format": "commonlab-datasearch-exact", "version": 1}', "MODEL", "FIELD"],
)
def test_a_foreign_or_damaged_manifest_says_rebuild(tmp_path, manifest):
    build_from_vectors([0], np.ones((1, DIMENSION), dtype=np.float32), tmp_path)
    path = tmp_path / SEMANTIC_MANIFEST
    document = json.loads(path.read_text())
    if manifest == "MODEL":
        manifest = json.dumps(document | {"model": "someone/else"})
    elif manifest == "FIELD":
        manifest = json.dumps(document | {"unheard_of": 1})
    path.write_text(manifest)
    with pytest.raises(InvalidInput, match="rebuild the semantic index"):
        SemanticIndex(tmp_path)


def test_a_second_build_into_the_same_directory_is_refused(tmp_path):
    vectors = clustered_unit_vectors(np.random.default_rng(0), 3, clusters=1)
    build_from_vectors([0, 1, 2], vectors, tmp_path)
    with pytest.raises(InvalidInput, match="already holds"):
        build_from_vectors([0, 1, 2], vectors, tmp_path)


@pytest.mark.parametrize(
    ("numbers", "vectors", "message"),
    [
        ([0, 2, 2], np.ones((3, DIMENSION)), "must increase"),
        ([0, -1], np.ones((2, DIMENSION)), "run from 0"),
        ([0, 1], np.ones((2, 12)), "expected floats of shape"),
        ([0, 1], np.zeros((2, DIMENSION)), "no direction"),
        ([0, 1], np.full((2, DIMENSION), np.nan), "no direction"),
        ([0], np.ones((2, DIMENSION)), "1 record numbers for 2 vectors"),
    ],
)
def test_bad_vectors_are_refused(tmp_path, numbers, vectors, message):
    with pytest.raises(InvalidInput, match=message):
        build_from_vectors(numbers, vectors, tmp_path)
    assert not (tmp_path / SEMANTIC_MANIFEST).exists()


def test_a_record_without_text_is_refused(tmp_path, corpus_vectors):
    with pytest.raises(InvalidInput, match="record 4 has no text"):
        build_semantic_index([(3, BREAD), (4, "  ")], tmp_path)


@pytest.mark.parametrize(
    ("query", "k", "message"),
    [
        ("", 10, "query is empty"),
        ("   ", 10, "query is empty"),
        ("x" * (MAX_QUERY_CHARS + 1), 10, "at most 2000"),
        ("bread", 0, "1 to 100"),
        ("bread", MAX_K + 1, "1 to 100"),
        ("bread", True, "1 to 100"),
    ],
)
def test_query_bounds(tmp_path, query, k, message):
    build_from_vectors([0], np.ones((1, DIMENSION), dtype=np.float32), tmp_path)
    with SemanticIndex(tmp_path) as index, pytest.raises(InvalidInput, match=message):
        index.search(query, k=k)


def test_embed_bounds():
    with pytest.raises(InvalidInput, match="text 1 is empty"):
        embed(["bread", ""])
    with pytest.raises(InvalidInput, match="one string"):
        embed("bread")
    with pytest.raises(InvalidInput, match="batch_size 0"):
        embed(["bread"], batch_size=0)
    assert embed([]).shape == (0, DIMENSION)
