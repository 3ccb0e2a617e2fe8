"""The work process: phases' gates, evidence, server-run verification, leases, prompt
attestation, and the services the facade composes over one unit of work.

It may use `ledger/`, `store/` and the leaves, never anything above it.
"""
