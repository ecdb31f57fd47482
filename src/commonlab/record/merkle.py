"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing and proofs.

Owns leaf/node hashing, tree roots, inclusion and consistency proof generation
(from full-subtree hashes only) and their verification per RFC 9162 §2.1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "HashReader",
    "MemoryTree",
    "ProofError",
    "consistency_proof",
    "dict_reader",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "subtrees_needed_for_consistency",
    "subtrees_needed_for_inclusion",
    "subtrees_needed_for_root",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# read(level, index) -> hash of the full subtree of 2**level leaves that starts
# at leaf index * 2**level.  Proof generation never asks for anything else.
HashReader = Callable[[int, int], bytes]

# A leaf range [start, end) whose hash is one node of the RFC tree.
_Range = tuple[int, int]


class ProofError(ValueError):
    """A Merkle proof (or the arguments to check one) does not verify."""


def leaf_hash(entry: bytes) -> bytes:
    """Hash of a log entry: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Reference MTH over leaf hashes (RFC 9162 §2.1.1), split at the largest power of two < n."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = _split_point(n)
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


class CompactRange:
    """The roots of the maximal full subtrees of the leaves so far: enough for any root.

    How a reader checks many entries against one signed root without trusting any tile:
    start from nothing (or from the subtrees of an earlier size, checked against that size's
    root), append each entry's leaf hash, compare `root()` with the checkpoint's.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), largest first

    @classmethod
    def at(cls, size: int, read: HashReader) -> CompactRange:
        """The range of the first `size` leaves, its subtrees read with `read` (untrusted
        until its root is compared with a signed one)."""
        _check_size(size)
        compact = cls()
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                compact._stack.append((level, read(level, start >> level)))
                start += 1 << level
        compact.size = size
        return compact

    def append(self, leaf: bytes) -> None:
        level, node = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            node = node_hash(left, node)
            level += 1
        self._stack.append((level, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root


# --- proof generation -------------------------------------------------------


def tree_root(size: int, read: HashReader) -> bytes:
    """Root hash of the tree of ``size`` leaves, built from full-subtree reads."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hash((0, size), read)


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``size`` leaves (RFC 9162 §2.1.3.1)."""
    return [_range_hash(r, read) for r in _inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, read: HashReader) -> list[bytes]:
    """Consistency proof from ``old_size`` to ``new_size`` (RFC 9162 §2.1.4.1).

    Empty when old_size is 0 or equals new_size: there is nothing to prove.
    """
    return [_range_hash(r, read) for r in _consistency_ranges(old_size, new_size)]


def subtrees_needed_for_root(size: int) -> list[tuple[int, int]]:
    """The (level, index) reads :func:`tree_root` will make, for batch fetching."""
    _check_size(size)
    return _subtrees(0, size) if size else []


def subtrees_needed_for_inclusion(index: int, size: int) -> list[tuple[int, int]]:
    """The (level, index) reads :func:`inclusion_proof` will make, for batch fetching."""
    return _unique(s for r in _inclusion_ranges(index, size) for s in _subtrees(*r))


def subtrees_needed_for_consistency(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The (level, index) reads :func:`consistency_proof` will make, for batch fetching."""
    return _unique(s for r in _consistency_ranges(old_size, new_size) for s in _subtrees(*r))


def dict_reader(hashes: Mapping[tuple[int, int], bytes]) -> HashReader:
    """A HashReader over pre-fetched {(level, index): hash}, e.g. one DB query's result."""

    def read(level: int, index: int) -> bytes:
        try:
            return hashes[(level, index)]
        except KeyError:
            raise KeyError(
                f"subtree hash (level={level}, index={index}) was not fetched; "
                "fetch every pair from subtrees_needed_for_*() first"
            ) from None

    return read


def _inclusion_ranges(index: int, size: int) -> list[_Range]:
    # PATH(m, D[lo:hi]) walked top-down; the proof lists siblings bottom-up.
    _check_size(size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    lo, hi, siblings = 0, size, []
    while hi - lo > 1:
        k = _split_point(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    return siblings[::-1]


def _consistency_ranges(old_size: int, new_size: int) -> list[_Range]:
    # SUBPROOF(m, D[lo:hi], b) walked top-down; the proof lists nodes bottom-up.
    _check_size(old_size)
    _check_size(new_size)
    if old_size > new_size:
        raise ValueError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    m, lo, hi, from_root, nodes = old_size, 0, new_size, True, []
    while m != hi - lo:
        k = _split_point(hi - lo)
        if m <= k:
            nodes.append((lo + k, hi))
            hi = lo + k
        else:
            nodes.append((lo, lo + k))
            lo, m, from_root = lo + k, m - k, False
    if not from_root:
        nodes.append((lo, hi))  # the old tree's last full subtree
    return nodes[::-1]


def _subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose an RFC tree node [start, end) into full subtrees, left to right.

    Every node range starts at a multiple of a power of two >= its width, so
    each piece taken largest-first is aligned.
    """
    out = []
    pos, width = start, end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def _range_hash(rng: _Range, read: HashReader) -> bytes:
    start, end = rng
    width = end - start
    if width & (width - 1) == 0:
        # A full subtree (every node range starts at a multiple of its width): one read.
        # Proofs are mostly these; only the tree's right edge needs folding.
        level = width.bit_length() - 1
        return _checked(read(level, start >> level), level, start >> level)
    # Full subtrees of an incomplete right edge fold right-to-left, as MTH does.
    hashes = [_checked(read(level, index), level, index) for level, index in _subtrees(*rng)]
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _checked(h: bytes, level: int, index: int) -> bytes:
    if len(h) != HASH_SIZE:
        raise ValueError(f"hash reader returned {len(h)} bytes for (level={level}, index={index})")
    return h


# --- proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2) --------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an audit path per RFC 9162 §2.1.3.2; raise ProofError if it fails."""
    _check_hashes(leaf_hash=leaf_hash, root=root)
    _check_proof(proof)
    if size < 1 or not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short: {len(proof)} hashes")
    if r != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the given root of tree size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check a consistency proof per RFC 9162 §2.1.4.2; raise ProofError if it fails.

    Edge cases outside the RFC's 0 < old < new: an empty old tree is consistent
    with everything (proof must be empty and old_root must be EMPTY_ROOT); equal
    sizes need an empty proof and equal roots.
    """
    _check_hashes(old_root=old_root, new_root=new_root)
    _check_proof(proof)
    if old_size < 0 or old_size > new_size:
        raise ProofError(f"cannot prove tree size {old_size} is a prefix of size {new_size}")
    if old_size == 0 or old_size == new_size:
        _verify_trivial_consistency(old_size, new_size, proof, old_root, new_root)
        return
    if not proof:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)  # the old root is itself a node of the new tree
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof is too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof is too short: {len(proof)} hashes")
    if fr != old_root:
        raise ProofError(f"consistency proof does not reproduce the old root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not reproduce the new root of size {new_size}")


def _verify_trivial_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    if proof:
        raise ProofError(
            f"consistency proof from {old_size} to {new_size} must be empty, "
            f"got {len(proof)} hashes"
        )
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("old root of an empty tree must be SHA-256 of the empty string")
    if old_size == new_size and old_root != new_root:
        raise ProofError(f"two different roots for the same tree size {old_size}")


def _check_hashes(**hashes: bytes) -> None:
    for name, h in hashes.items():
        if len(h) != HASH_SIZE:
            raise ProofError(f"{name} must be {HASH_SIZE} bytes, got {len(h)}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash #{i} must be {HASH_SIZE} bytes, got {len(h)}")


# --- helpers ----------------------------------------------------------------


def _split_point(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    if size < 0:
        raise ValueError(f"tree size must be non-negative, got {size}")


def _unique(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    return list(dict.fromkeys(pairs))


# --- in-memory tree ---------------------------------------------------------


class MemoryTree:
    """Append-only tree holding every full-subtree hash, level by level.

    ``levels[l][i]`` is the hash of leaves [i * 2**l, (i + 1) * 2**l).  Meant
    for tests, benchmarks and as a reference for other storage back ends.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash and every subtree hash it completes."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        h, level = leaf_hash, 0
        while True:
            row = self.levels[level]
            row.append(h)
            if len(row) % 2:
                return
            h = node_hash(row[-2], row[-1])
            level += 1
            if level == len(self.levels):
                self.levels.append([])

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def read(self, level: int, index: int) -> bytes:
        """HashReader: the full subtree at (level, index)."""
        if level < 0 or index < 0 or level >= len(self.levels) or index >= len(self.levels[level]):
            raise KeyError(
                f"no full subtree at (level={level}, index={index}) in a tree of size {self.size}"
            )
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree at ``size`` (default: current size)."""
        return tree_root(self._size_or_current(size), self.read)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size_or_current(size), self.read)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(old_size, self._size_or_current(new_size), self.read)

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside this tree's 0..{self.size}")
        return size
