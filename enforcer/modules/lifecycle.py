"""What the module services share: the unit of work, the blob store, the version trees, the
lease rules, the policy hook, the signing key — and three small helpers every one of them
needs (a manifest by its digest, the caller's lease on a task, a policy decision obeyed).

    kit = Lifecycle(work, blobs, trees, leases, policy, signer)
    manifest = kit.manifest(bundle_sha256)
    token = kit.hold_task(tx, ops, "T1")
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from ..errors import (
    ApprovalRequiredError,
    ForbiddenError,
    PhasegateError,
    PolicyDeniedError,
    StoreError,
)
from ..ledger.keys import Signer
from ..ledger.ops import Ops, Record, Refused
from ..process.leases import Leases
from ..process.work import Work, task_row
from ..store import Tx
from .blobs import BlobStore
from .manifest import Manifest, ManifestError
from .policy_hook import Decision, PolicyHook, PolicyRequest
from .trees import Trees

__all__ = ["Lifecycle"]

_CACHED_MANIFESTS = 64


@dataclass
class Lifecycle:
    work: Work
    blobs: BlobStore
    trees: Trees
    leases: Leases
    policy: PolicyHook
    signer: Signer
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _manifests: OrderedDict[str, Manifest] = field(default_factory=OrderedDict, repr=False)

    def lock(self, module: str) -> asyncio.Lock:
        """The in-process lock that serialises promotion, install and rollback of `module`
        (across processes the store's write transaction does)."""
        lock = self._locks.get(module)
        if lock is None:
            lock = self._locks[module] = asyncio.Lock()
        return lock

    def manifest(self, bundle_sha256: str) -> Manifest:
        """The manifest whose canonical bytes hash to `bundle_sha256` (checked on first read;
        kept for the next few reads, since manifests never change)."""
        found = self._manifests.get(bundle_sha256)
        if found is not None:
            self._manifests.move_to_end(bundle_sha256)
            return found
        data = self.blobs.read_checked(bundle_sha256)
        if data is None:
            raise StoreError(f"the manifest blob {bundle_sha256} is missing or altered")
        try:
            found = Manifest.from_bytes(data)
        except ManifestError as e:
            raise StoreError(f"the manifest blob {bundle_sha256} is malformed: {e}") from e
        self._manifests[bundle_sha256] = found
        if len(self._manifests) > _CACHED_MANIFESTS:
            self._manifests.popitem(last=False)
        return found

    def content(self, sha256: str) -> bytes:
        """A file blob's bytes, checked against its digest (StoreError when missing or altered:
        the store no longer holds what a manifest names)."""
        data = self.blobs.read_checked(sha256)
        if data is None:
            raise StoreError(f"the blob {sha256} is missing or altered")
        return data

    def hold_task(self, tx: Tx, ops: Ops, task: str, token: int | None = None) -> int:
        """The caller's lease token on the task's current phase (taken implicitly when free)."""
        view = task_row(tx, task)
        return self.leases.guard(tx, ops, task, view.phase.value, token)

    def obey(
        self,
        tx: Tx,
        ops: Ops,
        request: PolicyRequest,
        denied: Record | None = None,
        requested: Record | None = None,
    ) -> Decision:
        """Ask the policy; return an allow, raise POLICY_DENIED (or FORBIDDEN) or
        APPROVAL_REQUIRED otherwise, recording `denied` or `requested` (with the decision added
        to its data) if given. The policy's own entries (`Decision.notes`) are appended either
        way, before the decision's."""
        decision = self.policy.decide(request, tx)
        if decision.kind == "allow":
            for note in decision.notes:
                ops.emit(tx, note)
            return decision
        record = denied if decision.kind == "deny" else requested
        records = (
            []
            if record is None
            else [Record(record.type, record.subject, {**record.data, **decision.as_dict()})]
        )
        details = {
            "policy_set_hash": decision.policy_set_hash,
            "rules": list(decision.rules),
            "risk": decision.risk,
            "exceptions": list(decision.exceptions),
            **decision.details,
        }
        if decision.approval is not None:
            details["approval"] = decision.approval
        error: PhasegateError
        if decision.kind == "deny" and decision.code == "FORBIDDEN":
            error = ForbiddenError(decision.reason, hint=decision.hint, details=details)
        elif decision.kind == "deny":
            error = PolicyDeniedError(
                f"the policy denies this: {decision.reason}",
                hint=decision.hint
                or "policy_check(draft) says why; change the draft or ask a supervisor",
                details=details,
            )
        else:
            error = ApprovalRequiredError(
                f"a person must approve this first: {decision.reason}",
                hint=decision.hint
                or "a supervisor approves the request (phasegate approve ID); then call again",
                details=details,
            )
        raise Refused(error, *decision.notes, *records)
