"""Tiled log layout (c2sp.org/tlog-tiles): paths, bundles, tile building and tile-backed proofs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commonlab.record.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from commonlab.record.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    hash_from_tiles,
    new_tile_contents,
    parse_tile_path,
    tile_path,
    tiles_for_append,
    tiles_for_tree,
)

# --- paths ------------------------------------------------------------------


def test_constants() -> None:
    assert (TILE_HEIGHT, TILE_WIDTH) == (8, 256)


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((0, 1234067), "tile/0/x001/x234/067"),  # the spec's example
        ((0, 0), "tile/0/000"),
        ((1, 1), "tile/1/001"),
        ((5, 123456078, 2), "tile/5/x123/x456/078.p/2"),
        ((0, 1000, 255), "tile/0/x001/000.p/255"),
        ((63, 999), "tile/63/999"),
        ((2, 7, 256), "tile/2/007"),  # width 256 is a full tile: no suffix
    ],
)
def test_tile_path(args: tuple[int, ...], path: str) -> None:
    assert tile_path(*args) == path
    level, index, *width = args
    assert parse_tile_path(path) == (level, index, width[0] if width and width[0] < 256 else None)


def test_entries_path() -> None:
    assert entries_path(1234067) == "tile/entries/x001/x234/067"
    assert entries_path(3, 17) == "tile/entries/003.p/17"
    assert parse_tile_path("tile/entries/x001/x234/067.p/9") == ("entries", 1234067, 9)


@given(st.integers(0, 2**63), st.integers(0, 63), st.one_of(st.none(), st.integers(1, 255)))
def test_path_round_trip(index: int, level: int, width: int | None) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)
    assert parse_tile_path(entries_path(index, width)) == ("entries", index, width)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/x000/067",  # leading all-zero group
        "tile/0/x000",
        "tile/00/000",  # leading zero in level
        "tile/64/000",  # level out of range
        "tile/-1/000",
        "tile/0/67",  # not zero-padded
        "tile/0/0067",
        "tile/0/x001",  # last element must not have x
        "tile/0/001/002",  # inner elements need x
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000/",
        "tile/0//000",
        "tile/0",
        "tiles/0/000",
        "/tile/0/000",
        "tile/data/000",
        "tile/0/x\u0661\u0662\u0663/000",  # non-ASCII digits
        "tile/0/00a",
        "tile/2/3/x123/x456/078",  # Go-style path with a height element
    ],
)
def test_parse_rejects(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


@pytest.mark.parametrize(("args"), [(64, 0), (-1, 0), (0, -1), (0, 0, 0), (0, 0, 257)])
def test_tile_path_rejects(args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        tile_path(*args)


# --- entry bundles ----------------------------------------------------------


def test_entry_bundle_round_trip() -> None:
    entries = [b"", b"a", b"\x00" * 300, bytes(range(256)) * 255 + b"x" * 255]
    data = encode_entry_bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:5] == b"\x00\x01a"
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(b"") == []


def test_entry_bundle_limits() -> None:
    with pytest.raises(ValueError, match="65535"):
        encode_entry_bundle([b"x" * 65536])
    encode_entry_bundle([b"x" * 65535])
    with pytest.raises(ValueError, match="at most 256"):
        encode_entry_bundle([b""] * 257)
    with pytest.raises(ValueError, match="truncated"):
        decode_entry_bundle(b"\x00\x05abc")
    with pytest.raises(ValueError, match="truncated"):
        decode_entry_bundle(b"\x00\x01a\x00")


# --- which tiles exist ------------------------------------------------------


def test_tiles_for_tree_spec_examples() -> None:
    tiles = tiles_for_tree(70_000)
    level0 = [t for t in tiles if t[0] == 0]
    assert len(level0) == 274 and level0[-1] == (0, 273, 112)
    assert all(w == 256 for _, _, w in level0[:-1])
    assert [t for t in tiles if t[0] > 0] == [(1, 0, 256), (1, 1, 17), (2, 0, 1)]
    assert tiles_for_tree(256) == [(0, 0, 256), (1, 0, 1)]
    assert tiles_for_tree(0) == []


def test_tiles_for_append() -> None:
    assert tiles_for_append(255, 256) == [(0, 0, 256), (1, 0, 1)]
    assert tiles_for_append(256, 257) == [(0, 1, 1)]
    assert tiles_for_append(10, 10) == []
    assert tiles_for_append(65535, 65536) == [(0, 255, 256), (1, 0, 256), (2, 0, 1)]
    with pytest.raises(ValueError):
        tiles_for_append(5, 4)


# --- building tiles and reading them back ---------------------------------------


def expected_tile(tree: MemoryTree, level: int, index: int, width: int) -> bytes:
    """The spec's definition: hashes of tree level 8L, indices 256N .. 256N+W-1."""
    return b"".join(tree.read(TILE_HEIGHT * level, TILE_WIDTH * index + i) for i in range(width))


class Store:
    """A dict of tiles standing in for the database, counting reads."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.tiles[(level, index)]

    def append(self, tree: MemoryTree, leaf_hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
        old = tree.size
        changed = new_tile_contents(old, leaf_hashes, get_tile=self.get)
        tree.extend(leaf_hashes)
        assert {(lv, n) for lv, n, _ in tiles_for_append(old, tree.size)} == set(changed)
        self.tiles.update(changed)
        return changed


def leaves(start: int, count: int) -> list[bytes]:
    return [leaf_hash(b"entry %d" % i) for i in range(start, start + count)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_tiles_match_spec_and_memory_tree(batches: list[int], rnd: random.Random) -> None:
    tree, store = MemoryTree(), Store()
    for count in batches:
        store.append(tree, leaves(tree.size, count))
        size = tree.size
        for level, index, width in tiles_for_tree(size):
            assert store.tiles[(level, index)] == expected_tile(tree, level, index, width)
        reader = TileHashReader(store.get, cache_size=8)
        assert tree_root(size, reader) == tree.root()
        if size:
            index = rnd.randrange(size)
            assert inclusion_proof(index, size, reader) == tree.inclusion_proof(index)
            old = rnd.randrange(size + 1)
            assert consistency_proof(old, size, reader) == tree.consistency_proof(old)


def test_large_tree_reaches_level_two_tiles() -> None:
    rnd = random.Random(1)
    tree, store = MemoryTree(), Store()
    while tree.size < 70_000:
        store.append(tree, leaves(tree.size, rnd.randrange(1, 3000)))
    size = tree.size
    for level, index, width in tiles_for_tree(size):
        if level > 0 or index >= (size >> 8) - 2:
            assert store.tiles[(level, index)] == expected_tile(tree, level, index, width)
    assert store.tiles[(2, 0)] == tree.read(16, 0)  # one full 65536-leaf subtree so far
    reader = TileHashReader(store.get)
    root = tree.root()
    assert tree_root(size, reader) == root
    for index in (0, 255, 256, 65535, 65536, size - 1):
        proof = inclusion_proof(index, size, reader)
        verify_inclusion(tree.levels[0][index], index, size, proof, root)
    for old in (1, 255, 256, 65536, 65537, size - 1):
        verify_consistency(old, size, consistency_proof(old, size, reader), tree.root(old), root)


def test_appending_one_leaf_at_a_time_equals_one_batch() -> None:
    tree_a, store_a = MemoryTree(), Store()
    tree_b, store_b = MemoryTree(), Store()
    hashes = leaves(0, 600)
    for h in hashes:
        store_a.append(tree_a, [h])
    store_b.append(tree_b, hashes)
    assert store_a.tiles == store_b.tiles


def test_only_old_partial_tiles_are_read_when_appending() -> None:
    tree, store = MemoryTree(), Store()
    store.append(tree, leaves(0, 300))
    store.reads = 0
    store.append(tree, leaves(300, 10))
    assert store.reads == 1  # the partial level-0 tile 0/1; level 1 did not grow
    store.reads = 0
    store.append(tree, leaves(310, 202))  # completes tile 0/1, so level 1 grows too
    assert store.reads == 2


def test_mismatched_old_partial_tile_is_an_error() -> None:
    tree, store = MemoryTree(), Store()
    store.append(tree, leaves(0, 10))
    with pytest.raises(ValueError, match="exactly 9"):
        new_tile_contents(9, leaves(9, 1), get_tile=store.get)


def test_reader_cache_avoids_refetching() -> None:
    tree, store = MemoryTree(), Store()
    store.append(tree, leaves(0, 5000))
    reader = TileHashReader(store.get, cache_size=64)
    inclusion_proof(1234, tree.size, reader)
    first = store.reads
    store.reads = 0
    inclusion_proof(1234, tree.size, reader)
    assert store.reads == 0 and first > 0


def test_reader_refetches_a_tile_that_grew() -> None:
    tree, store = MemoryTree(), Store()
    store.append(tree, leaves(0, 3))
    reader = TileHashReader(store.get)
    assert reader.read(1, 0) == tree.read(1, 0)
    with pytest.raises(KeyError, match="tile 0/0 has 3 hashes"):
        reader.read(2, 0)
    store.append(tree, leaves(3, 1))
    assert reader.read(2, 0) == tree.read(2, 0)  # cached narrower copy is replaced


def test_hash_from_tiles_matches_memory_tree() -> None:
    tree, store = MemoryTree(), Store()
    store.append(tree, leaves(0, 1000))
    for level in range(10):
        for index in range(min(3, tree.size >> level)):
            assert hash_from_tiles(level, index, get_tile=store.get) == tree.read(level, index)


def test_bad_tile_data_is_rejected() -> None:
    with pytest.raises(ValueError, match="not 32 x"):
        TileHashReader(lambda level, index: b"x" * 33).read(0, 0)


def test_inner_hashes_give_the_same_reads_as_rehashing() -> None:
    import os

    from commonlab.record.merkle import root_from_leaf_hashes
    from commonlab.record.tiles import TileHashReader, inner_hashes

    tile = os.urandom(256 * 32)
    inner = inner_hashes(tile)
    assert len(inner) == 255 * 32
    assert inner[-32:] == root_from_leaf_hashes([tile[i : i + 32] for i in range(0, 8192, 32)])
    plain = TileHashReader(lambda level, index: tile)
    stored = TileHashReader(lambda level, index: (tile, inner))
    for level in range(9):
        for index in range(256 >> level):
            assert stored.read(level, index) == plain.read(level, index)
