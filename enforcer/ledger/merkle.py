"""RFC 6962 Merkle tree hashing, with inclusion and consistency proofs.

Leaves are hashed as ``sha256(0x00 || data)`` and interior nodes as
``sha256(0x01 || left || right)`` (RFC 6962 §2.1), so a leaf can never pose as a node. Proof
verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

    >>> root([leaf_hash(b"")]).hex()[:16]
    '6e340b9cffb37a98'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "Frontier",
    "MerkleProofError",
    "Prover",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256


class MerkleProofError(ValueError):
    """A proof does not prove what it claims."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: sha256(0x00 || data)."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: sha256(0x01 || left || right)."""
    return hashlib.sha256(_NODE + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash over leaf hashes; the empty tree hashes to sha256("").

    Pairing level by level and carrying an odd last node up unchanged builds the same tree as
    RFC 6962's split at the largest power of two below n, without recursion.
    """
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf `index` in the tree over `leaves` (RFC 6962 §2.1.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"index {index} outside tree of size {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root(leaves[:k])]


class Prover:
    """Inclusion proofs for many leaves of one tree: each subtree root is computed once, so
    proving every leaf of an n-leaf tree costs O(n log n) hashes instead of O(n^2)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self._roots: dict[tuple[int, int], bytes] = {}

    def _root(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self.leaves[lo]
        got = self._roots.get((lo, hi))
        if got is None:
            k = _split(hi - lo)
            got = self._roots[(lo, hi)] = node_hash(self._root(lo, lo + k), self._root(lo + k, hi))
        return got

    def proof(self, index: int) -> list[bytes]:
        """The same audit path as `inclusion_proof(leaves, index)`."""
        if not 0 <= index < len(self.leaves):
            raise ValueError(f"index {index} outside tree of size {len(self.leaves)}")
        path: list[bytes] = []
        lo, hi = 0, len(self.leaves)
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._root(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._root(lo, lo + k))
                lo = lo + k
        path.reverse()  # inclusion_proof lists the deepest sibling first
        return path


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree of the first `old_size` leaves is a prefix (RFC 6962 §2.1.2)."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"old size {old_size} outside 1..{len(leaves)}")
    return _subproof(old_size, leaves, True)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise MerkleProofError unless `proof` places `leaf` at `index` under `expected_root`."""
    if not 0 <= index < size:
        raise MerkleProofError(f"index {index} outside tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise MerkleProofError("proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != expected_root:
        raise MerkleProofError("inclusion proof does not reach the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise MerkleProofError unless `proof` shows the old tree is a prefix of the new one."""
    if not 0 < old_size <= new_size:
        raise MerkleProofError(f"sizes {old_size} -> {new_size} are not a valid pair")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise MerkleProofError("equal sizes need an empty proof and equal roots")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    if not path:
        raise MerkleProofError("empty consistency proof")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise MerkleProofError("consistency proof does not reach the expected roots")


class Frontier:
    """The right edge of a growing RFC 6962 tree: the roots of its perfect subtrees.

    Appending is amortised O(1) and the root is O(log n), so a process can checkpoint a long
    ledger without re-reading it: it extends the frontier with the leaves appended since.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        # One root per set bit of `size`, largest subtree first: the heights are implied.
        self._nodes: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        nodes, node, n = self._nodes, leaf, self.size
        while n & 1:  # each trailing 1 bit is a perfect subtree of the new leaf's height
            node = _sha256(_NODE + nodes.pop() + node).digest()
            n >>= 1
        nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        """Folding the perfect subtrees right to left gives RFC 6962's root for any size."""
        if not self._nodes:
            return hashlib.sha256(b"").digest()
        acc = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            acc = node_hash(node, acc)
        return acc
