"""Governed modules: blobs, manifests, drafts, patches, sandbox, promotion, install.

The change lifecycle of DESIGN.md (Governed modules): a module's versions are immutable
manifests over content-addressed blobs; drafts are edited in isolation, validated in the sandbox,
promoted into signed versions and installed through one guard. It may use `ledger/`, `store/`,
`policy/` and the leaves, never anything above it.
"""
