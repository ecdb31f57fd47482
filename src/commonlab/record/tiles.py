"""Tiled transparency log layout (c2sp.org/tlog-tiles).

Owns tile and entry-bundle paths, entry bundle encoding, which tiles exist at a
tree size, building tiles when leaves are appended, and reading subtree hashes back out of tiles.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal

from commonlab.record.merkle import HASH_SIZE, node_hash

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "GetTile",
    "TileHashReader",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "entries_path",
    "hash_from_tiles",
    "inner_hashes",
    "new_tile_contents",
    "parse_tile_path",
    "tile_path",
    "tiles_for_append",
    "tiles_for_tree",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes per full tile
_MAX_LEVEL = 63
_MAX_ENTRY = 0xFFFF  # entries are uint16 length-prefixed
_MAX_INDEX = 2**64  # far beyond any real log; keeps hostile paths bounded

# get_tile(tile_level, tile_index) -> the stored hashes of that tile (its bottom
# row), 32 bytes each; a partial tile has fewer than 256. A store that also keeps a
# full tile's inner hashes (see `inner_hashes`) may return (bottom, inner) instead.
GetTile = Callable[[int, int], "bytes | tuple[bytes, bytes | None]"]


# --- paths ------------------------------------------------------------------


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]``; width None or 256 means a full tile."""
    if not 0 <= level <= _MAX_LEVEL:
        raise ValueError(f"tile level must be 0..{_MAX_LEVEL}, got {level}")
    return f"tile/{level}/{_encode_index(index)}{_partial_suffix(width)}"


def entries_path(index: int, width: int | None = None) -> str:
    """``tile/entries/<N>[.p/<W>]`` for entry bundle ``index``."""
    return f"tile/entries/{_encode_index(index)}{_partial_suffix(width)}"


def parse_tile_path(path: str) -> tuple[int | Literal["entries"], int, int | None]:
    """Parse a tile or entry bundle path into (level or "entries", index, width or None).

    Only the one canonical spelling of each tile is accepted.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise ValueError(f"not a tile path: {path!r} (want tile/<L>/<N>[.p/<W>])")
    level: int | Literal["entries"] = "entries"
    if parts[1] != "entries":
        level = _parse_decimal(parts[1], f"tile level in {path!r}")
        if level > _MAX_LEVEL:
            raise ValueError(f"tile level must be 0..{_MAX_LEVEL} in {path!r}")
    elements, width = parts[2:], None
    if len(elements) >= 2 and elements[-2].endswith(".p"):
        width = _parse_decimal(elements[-1], f"partial width in {path!r}")
        if not 1 <= width < TILE_WIDTH:
            raise ValueError(f"partial tile width must be 1..{TILE_WIDTH - 1} in {path!r}")
        elements = [*elements[:-2], elements[-2][: -len(".p")]]
    index = _parse_index(elements, path)
    return level, index, width


def _encode_index(index: int) -> str:
    if not 0 <= index < _MAX_INDEX:
        raise ValueError(f"tile index must be non-negative (and below 2^64), got {index}")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _partial_suffix(width: int | None) -> str:
    if width is None or width == TILE_WIDTH:
        return ""
    if not 1 <= width < TILE_WIDTH:
        raise ValueError(f"tile width must be 1..{TILE_WIDTH}, got {width}")
    return f".p/{width}"


def _parse_index(elements: list[str], path: str) -> int:
    *dirs, last = elements
    if not all(d.startswith("x") and _is_digits(d[1:], 3) for d in dirs) or not _is_digits(last, 3):
        raise ValueError(f"bad tile index in {path!r}: want zero-padded groups like x001/x234/067")
    index = int("".join(d[1:] for d in dirs) + last)
    # Exactly one spelling per index: no leading x000 groups, no oversized indices.
    if index >= _MAX_INDEX or "/".join(elements) != _encode_index(index):
        raise ValueError(f"non-canonical tile index in {path!r}: leading all-zero group")
    return index


def _parse_decimal(s: str, what: str) -> int:
    if not _is_digits(s) or (s[0] == "0" and s != "0"):
        raise ValueError(f"{what} must be a decimal without leading zeros, got {s!r}")
    return int(s)


def _is_digits(s: str, length: int | None = None) -> bool:
    return bool(s) and all(c in "0123456789" for c in s) and (length is None or len(s) == length)


# --- entry bundles ----------------------------------------------------------


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Concatenate entries, each prefixed with its big-endian uint16 length."""
    if len(entries) > TILE_WIDTH:
        raise ValueError(f"an entry bundle holds at most {TILE_WIDTH} entries, got {len(entries)}")
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > _MAX_ENTRY:
            raise ValueError(
                f"entry {i} is {len(entry)} bytes; tlog-tiles entries are at most {_MAX_ENTRY}"
            )
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle back into entries; raise ValueError if it is truncated."""
    entries, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError(f"entry bundle truncated: length prefix cut off at byte {pos}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise ValueError(
                f"entry bundle truncated: entry {len(entries)} needs {n} bytes at byte {pos}"
            )
        entries.append(bytes(data[pos : pos + n]))
        pos += n
    if len(entries) > TILE_WIDTH:
        raise ValueError(f"entry bundle holds {len(entries)} entries, more than {TILE_WIDTH}")
    return entries


# --- which tiles exist ------------------------------------------------------


def tiles_for_tree(size: int) -> list[tuple[int, int, int]]:
    """Every tile of a tree of ``size`` leaves as (level, index, width), full and partial.

    Level L holds floor(size / 256**L) hashes: that many // 256 full tiles and
    one partial tile of the remainder, if any.
    """
    return tiles_for_append(0, size)


def tiles_for_append(old_size: int, new_size: int) -> list[tuple[int, int, int]]:
    """Tiles (level, index, width) whose contents differ between the two tree sizes."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size} and {new_size}")
    tiles = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        old_n = old_size >> (TILE_HEIGHT * level)
        new_n = new_size >> (TILE_HEIGHT * level)
        if old_n != new_n:
            full_end = new_n // TILE_WIDTH
            tiles += [(level, n, TILE_WIDTH) for n in range(old_n // TILE_WIDTH, full_end)]
            if new_n % TILE_WIDTH:
                tiles.append((level, full_end, new_n % TILE_WIDTH))
        level += 1
    return tiles


# --- building tiles ---------------------------------------------------------


def new_tile_contents(
    old_size: int, new_leaf_hashes: Sequence[bytes], *, get_tile: GetTile
) -> dict[tuple[int, int], bytes]:
    """Tiles to store after appending ``new_leaf_hashes`` to a tree of ``old_size``.

    Returns {(level, index): hashes}, covering the leaf tiles and every higher
    tile that gains a hash because a tile below it became full.  ``get_tile`` is
    only asked for the old partial tile at each level that grows.
    """
    for i, h in enumerate(new_leaf_hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"new leaf hash #{i} must be {HASH_SIZE} bytes, got {len(h)}")
    out: dict[tuple[int, int], bytes] = {}
    row, start, level = b"".join(new_leaf_hashes), old_size, 0
    while row:
        first_tile, offset = divmod(start, TILE_WIDTH)
        row = _old_partial(get_tile, level, first_tile, offset, old_size) + row
        completed = []
        for i in range(0, len(row), TILE_WIDTH * HASH_SIZE):
            tile = row[i : i + TILE_WIDTH * HASH_SIZE]
            out[(level, first_tile + i // (TILE_WIDTH * HASH_SIZE))] = tile
            if len(tile) == TILE_WIDTH * HASH_SIZE:
                completed.append(_tile_root(tile))
        # A full tile's root is the next tile level's next hash.
        row, start, level = b"".join(completed), first_tile, level + 1
    return out


def _old_partial(get_tile: GetTile, level: int, index: int, width: int, old_size: int) -> bytes:
    if width == 0:
        return b""
    data = get_tile(level, index)
    if len(data) != width * HASH_SIZE:
        raise ValueError(
            f"stored tile {level}/{index} has {len(data) / HASH_SIZE:g} hashes, "
            f"but a tree of size {old_size} has exactly {width} there"
        )
    return data


def inner_hashes(tile: bytes) -> bytes:
    """A full tile's inner hashes, levels 1..8 of its subtree, concatenated bottom-up.

    Storing them beside a full tile lets proofs read any hash in it without rehashing
    (255 hashes of 32 bytes; the last is the tile's root).
    """
    if len(tile) != TILE_WIDTH * HASH_SIZE:
        raise ValueError(f"only a full tile has inner hashes; got {len(tile)} bytes")
    return b"".join(h for level in _tile_levels(tile, TILE_HEIGHT)[1:] for h in level)


# Where each level of a full tile starts among its 511 hashes (the bottom row, then the inner
# hashes level by level): level r holds 256 >> r hashes from hash 512 - (512 >> r).
_LEVEL_START = [2 * TILE_WIDTH - (2 * TILE_WIDTH >> r) for r in range(TILE_HEIGHT + 1)]


def _tile_root(tile: bytes) -> bytes:
    """Merkle root of a full tile's 256 hashes (a perfect subtree of height 8)."""
    return _tile_levels(tile, TILE_HEIGHT)[TILE_HEIGHT][0]


def _tile_levels(tile: bytes, depth: int) -> list[list[bytes]]:
    levels = [[tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]]
    _extend_levels(levels, depth)
    return levels


def _extend_levels(levels: list[list[bytes]], depth: int) -> None:
    # Only complete pairs combine: a partial tile has no hash for an unfinished subtree.
    while len(levels) <= depth:
        prev = levels[-1]
        levels.append([node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)])


# --- reading hashes from tiles ----------------------------------------------


class TileHashReader:
    """A merkle HashReader backed by tiles, with an LRU cache of each tile's inner levels.

    Tree level ``8*L + r`` lives in tile level L: the hash is rebuilt from the
    2**r bottom-row hashes under it.  Tiles are not checked against a
    checkpoint here; clients verify the proofs built from them.
    """

    def __init__(self, get_tile: GetTile, *, cache_size: int = 1024) -> None:
        self._get_tile = get_tile
        self._cache_size = cache_size
        # A full tile stored with its inner hashes is kept as its 511 hashes in one bytes
        # object (a proof reads a handful of them: slicing each when read costs least); any
        # other tile as its levels, computed as far up as they have been read.
        self._cache: OrderedDict[tuple[int, int], bytes | list[list[bytes]]] = OrderedDict()

    def __call__(self, level: int, index: int) -> bytes:
        return self.read(level, index)

    def read(self, level: int, index: int) -> bytes:
        """Hash of the full subtree of 2**level leaves starting at leaf index * 2**level."""
        if level < 0 or index < 0:
            raise ValueError(f"no subtree at (level={level}, index={index})")
        tile_level, r = divmod(level, TILE_HEIGHT)
        tile_index, offset = divmod(index << r, TILE_WIDTH)
        tile = self._levels(tile_level, tile_index, need=offset + (1 << r))
        if type(tile) is bytes:
            at = (_LEVEL_START[r] + (offset >> r)) * HASH_SIZE
            return tile[at : at + HASH_SIZE]
        _extend_levels(tile, r)
        return tile[r][offset >> r]

    def _levels(self, tile_level: int, tile_index: int, *, need: int) -> bytes | list[list[bytes]]:
        key = (tile_level, tile_index)
        levels = self._cache.get(key)
        # Tiles only grow, so a cached narrower copy is still right for what it holds.
        if levels is not None and (type(levels) is bytes or len(levels[0]) >= need):
            self._cache.move_to_end(key)
            return levels
        stored = self._get_tile(tile_level, tile_index)
        data, inner = stored if isinstance(stored, tuple) else (stored, None)
        if len(data) % HASH_SIZE or len(data) > TILE_WIDTH * HASH_SIZE:
            raise ValueError(
                f"tile {tile_level}/{tile_index} is {len(data)} bytes, not 32 x 1..256"
            )
        if len(data) < need * HASH_SIZE:
            raise KeyError(
                f"tile {tile_level}/{tile_index} has {len(data) // HASH_SIZE} hashes; "
                f"this subtree needs the first {need}"
            )
        if inner is not None and len(data) == TILE_WIDTH * HASH_SIZE:
            if len(inner) != (TILE_WIDTH - 1) * HASH_SIZE:
                raise ValueError(
                    f"tile {tile_level}/{tile_index}: inner hashes are {len(inner)} bytes"
                )
            tile: bytes | list[list[bytes]] = bytes(data) + bytes(inner)
        else:
            tile = _tile_levels(data, 0)
        if self._cache_size > 0:
            self._cache[key] = tile
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return tile


def hash_from_tiles(level: int, index: int, *, get_tile: GetTile) -> bytes:
    """One-off read of a full subtree hash from tiles (no caching)."""
    return TileHashReader(get_tile, cache_size=0).read(level, index)
