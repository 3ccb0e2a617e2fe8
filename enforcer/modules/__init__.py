"""Governed modules: blobs, manifests, drafts, patches, sandbox, promotion, install.

The change lifecycle of DESIGN.md (Governed modules): a module's versions are immutable
manifests over content-addressed blobs; drafts are edited in isolation, validated in the sandbox,
promoted into signed versions and installed through one guard. `service.Modules` is the facade
(`Enforcer.modules`); each service over the shared `lifecycle.Lifecycle` serves one noun:

    registry     module add, list, versions          validation   the sandboxed validator run
    drafts       create, write, delete, patch,       promotion    a VALIDATED draft -> version N+1
                 rebase, diff, show, discard         installs     install, rollback, reconcile

built from small parts with one job each: `blobs`, `manifest`, `tree_import`, `diffs`,
`patches`, `rebase`, `attestation`, `guard`, `trees` (+ `fsutil`), `records`, `policy_hook`,
`integrity_check`, `sandbox`, and `halt_points` (**test-only** crash points).

It may use `process/`, `ledger/`, `store/` and the leaves, never anything above it; the policy
package (above) plugs in through `policy_hook.PolicyHook`.
"""
