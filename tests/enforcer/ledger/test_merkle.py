"""RFC 6962 Merkle hashing against the published Certificate Transparency test vectors, and
properties of proofs and the frontier over random trees."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.ledger import merkle
from enforcer.ledger.merkle import MerkleProofError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Published vectors of the Certificate Transparency reference implementation, as kept by
# transparency-dev/merkle: proof/verify_test.go (commit 02194e9afb6c1d95b5381350007963aa70fff472;
# the same values are testonly/constants.go there and the test data of
# google/certificate-transparency). `leaf` in the proof vectors is 1-based, as in the source.
LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
EMPTY_ROOT = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
ROOTS = [  # root of the tree over the first 1..8 leaves
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
INCLUSION_PROOFS = [  # (leaf, size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (3, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        2,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CONSISTENCY_PROOFS = [  # (size1, size2, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]


# --- the published vectors ------------------------------------------------------------------


def test_the_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert merkle.root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert merkle.Frontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_published_vectors(size: int) -> None:
    assert merkle.root(LEAF_HASHES[:size]) == ROOTS[size - 1]


def test_frontier_reproduces_the_published_roots_as_it_grows() -> None:
    frontier = merkle.Frontier()
    for size, leaf in enumerate(LEAF_HASHES, start=1):
        frontier.append(leaf)
        assert (frontier.size, frontier.root()) == (size, ROOTS[size - 1])


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS)
def test_inclusion_proofs_match_the_published_vectors(
    leaf: int, size: int, proof: list[bytes]
) -> None:
    assert merkle.inclusion_proof(LEAF_HASHES[:size], leaf - 1) == proof
    merkle.verify_inclusion(LEAF_HASHES[leaf - 1], leaf - 1, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS)
def test_consistency_proofs_match_the_published_vectors(
    size1: int, size2: int, proof: list[bytes]
) -> None:
    assert merkle.consistency_proof(LEAF_HASHES[:size2], size1) == proof
    merkle.verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], proof)


def _flipped(proof: Sequence[bytes], i: int, mask: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ mask]) + out[i][1:]
    return out


def corrupt_inclusion(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    """The probes of corruptInclusionProof in the reference test: each must fail."""
    probes = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size / 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (b"WrongLeaf", index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, EMPTY_ROOT)),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]
    probes += [
        (f"modified proof[{i}] bit 3", (leaf, index, size, _flipped(proof, i, 8), root))
        for i in range(len(proof))
    ]
    if proof:
        probes.append(("removed component", (leaf, index, size, proof[:-1], root)))
    if len(proof) > 1:
        probes.append(
            ("inserted component", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root))
        )
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION_PROOFS[1:])
def test_corrupted_inclusion_proofs_are_refused(leaf: int, size: int, proof: list[bytes]) -> None:
    index = leaf - 1
    accepted = []
    for name, args in corrupt_inclusion(index, size, proof, ROOTS[size - 1], LEAF_HASHES[index]):
        try:
            merkle.verify_inclusion(*args)
        except MerkleProofError:
            continue
        accepted.append(name)
    assert accepted == []


def corrupt_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[tuple[str, tuple[int, int, bytes, bytes, list[bytes]]]]:
    """The probes of corruptConsistencyProof in the reference test: each must fail."""
    probes = [
        ("size1 - 1", (size1 - 1, size2, root1, root2, proof)),
        ("size1 + 1", (size1 + 1, size2, root1, root2, proof)),
        ("size1 ^ 2", (size1 ^ 2, size2, root1, root2, proof)),
        ("size2 * 2", (size1, size2 * 2, root1, root2, proof)),
        ("size2 / 2", (size1, size2 // 2, root1, root2, proof)),
        ("wrong root1", (size1, size2, b"WrongRoot", root2, proof)),
        ("wrong root2", (size1, size2, root1, b"WrongRoot", proof)),
        ("swapped roots", (size1, size2, root2, root1, proof)),
        ("empty proof", (size1, size2, root1, root2, [])),
        ("trailing garbage", (size1, size2, root1, root2, [*proof, b""])),
        ("trailing root1", (size1, size2, root1, root2, [*proof, root1])),
        ("trailing root2", (size1, size2, root1, root2, [*proof, root2])),
        ("preceding garbage", (size1, size2, root1, root2, [b"", *proof])),
        ("preceding root1", (size1, size2, root1, root2, [root1, *proof])),
        ("preceding root2", (size1, size2, root1, root2, [root2, *proof])),
        ("preceding proof[0]", (size1, size2, root1, root2, [proof[0], *proof])),
        ("truncated proof", (size1, size2, root1, root2, proof[:-1])),
    ]
    probes += [
        (f"modified proof[{i}] bit 4", (size1, size2, root1, root2, _flipped(proof, i, 16)))
        for i in range(len(proof))
    ]
    return probes


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS[1:])
def test_corrupted_consistency_proofs_are_refused(
    size1: int, size2: int, proof: list[bytes]
) -> None:
    accepted = []
    for name, args in corrupt_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], proof):
        try:
            merkle.verify_consistency(*args)
        except MerkleProofError:
            continue
        accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize(
    ("size1", "size2", "root1", "root2", "proof"),
    [
        (1, 1, b"don't care 1", b"don't care 2", []),  # equal sizes, different roots
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),  # equal roots, but a proof
        (2, 1, b"r1", b"r2", []),  # time travel to the past
        (1, 2, b"r1", b"r2", []),  # empty proof for a real extension
        (0, 1, EMPTY_ROOT, ROOTS[0], []),  # RFC 9162 proves 0 < m < n only
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, []),
    ],
)
def test_degenerate_consistency_checks_are_refused(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(MerkleProofError):
        merkle.verify_consistency(size1, size2, root1, root2, proof)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 3)])
def test_inclusion_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(MerkleProofError):
        merkle.verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def test_proof_generation_refuses_positions_outside_the_tree() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(LEAF_HASHES[:3], 3)
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAF_HASHES[:3], 0)
    with pytest.raises(ValueError):
        merkle.consistency_proof(LEAF_HASHES[:3], 4)


def test_leaves_and_nodes_are_hashed_with_distinct_prefixes() -> None:
    a, b = LEAF_HASHES[1], LEAF_HASHES[2]
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    # A node can never pose as a leaf over the same bytes (RFC 6962 second-preimage guard).
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)


# --- properties over random trees -----------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=16), min_size=1, max_size=70).map(
    lambda xs: [merkle.leaf_hash(x) for x in xs]
)


def _flip(proof: list[bytes], data: Any) -> list[bytes]:
    i = data.draw(st.integers(0, len(proof) - 1), label="element")
    j = data.draw(st.integers(0, len(proof[i]) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(proof[i])
    damaged[j] ^= 1 << bit
    return [*proof[:i], bytes(damaged), *proof[i + 1 :]]


@settings(max_examples=100, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_inclusion_proof_verifies_and_any_flipped_bit_fails(
    leaves: list[bytes], data: Any
) -> None:
    size = len(leaves)
    root = merkle.root(leaves)
    for i in range(size):
        merkle.verify_inclusion(leaves[i], i, size, merkle.inclusion_proof(leaves, i), root)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = merkle.inclusion_proof(leaves, index)
    if proof:
        with pytest.raises(MerkleProofError):
            merkle.verify_inclusion(leaves[index], index, size, _flip(proof, data), root)
    with pytest.raises(MerkleProofError):
        merkle.verify_inclusion(leaves[index], index, size, proof, _flip([root], data)[0])


@settings(max_examples=100, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_consistency_proof_verifies_and_any_flipped_bit_fails(
    leaves: list[bytes], data: Any
) -> None:
    new_size = len(leaves)
    new_root = merkle.root(leaves)
    for m in range(1, new_size + 1):
        m_proof = merkle.consistency_proof(leaves, m)
        merkle.verify_consistency(m, new_size, merkle.root(leaves[:m]), new_root, m_proof)
    old_size = data.draw(st.integers(1, new_size), label="old size")
    old_root = merkle.root(leaves[:old_size])
    proof = merkle.consistency_proof(leaves, old_size)
    if proof:
        with pytest.raises(MerkleProofError):
            merkle.verify_consistency(old_size, new_size, old_root, new_root, _flip(proof, data))
    with pytest.raises(MerkleProofError):
        merkle.verify_consistency(old_size, new_size, _flip([old_root], data)[0], new_root, proof)


@settings(max_examples=100, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), max_size=200))
def test_frontier_root_equals_root_for_every_prefix(leaves: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.root([])
    for size, leaf in enumerate(hashes, start=1):
        frontier.append(leaf)
        assert frontier.size == size
        assert frontier.root() == merkle.root(hashes[:size])


def _reference_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1 as written: split at the largest power of two below n, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(
        b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])
    ).digest()


@settings(max_examples=100, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), max_size=100))
def test_root_equals_the_recursive_definition_of_rfc6962(leaves: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    assert merkle.root(hashes) == _reference_root(hashes)


@given(st.integers(min_value=1, max_value=70), st.data())
def test_the_prover_gives_every_leaf_the_audit_path_of_rfc_6962(
    n: int, data: st.DataObject
) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    prover = merkle.Prover(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    assert prover.proof(index) == merkle.inclusion_proof(leaves, index)
    merkle.verify_inclusion(leaves[index], index, n, prover.proof(index), merkle.root(leaves))
