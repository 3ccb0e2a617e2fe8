"""The ledger: RFC 8785 entries in one hash chain, its RFC 6962 Merkle tree, signed checkpoints,
the keys that sign them, the offline verifier, and the projection the store keeps of it.

It may use `store/` and the leaves, never `process/` or anything above it.
"""
