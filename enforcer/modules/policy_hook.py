"""The policy hook: the one place the lifecycle asks "may this happen?" (DESIGN.md, Policy).

The lifecycle calls the hook at four points — when a draft's paths are about to change
(``edit``: write, delete, patch, rebase), when a draft is about to be promoted (``promote``),
and when a module's pointer is about to move (``install``, ``rollback``) — and obeys the typed
`Decision` it returns: ``allow``, ``deny(reason)`` (POLICY_DENIED, or FORBIDDEN when only an
admin may) or ``needs_approval(request)`` (APPROVAL_REQUIRED, with the request in
``details.approval``). Every decision carries the ``policy_set_hash`` of the rules that made
it, which goes into the ledger entry and the attestation, and the ledger entries the policy
asks to have appended with it (``notes``: a reloaded policy file). `policy_check` returns the
promotion decision as it stands; `approval_of` the approval state `draft_show` reports.

The policy package (``enforcer/policy/``) implements `PolicyHook` over ``phasegate.toml``;
until then `DefaultPolicy` allows everything, and says so in its hash.

    hook = DefaultPolicy()
    decision = hook.decide(PolicyRequest("promote", "skills", "skills-d1", "T1", "alice", ...), tx)
    decision.kind           # "allow"
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..ledger import canonical
from ..ledger.ops import Record
from ..store import Tx

__all__ = [
    "DEFAULT_POLICY_SET_HASH",
    "Decision",
    "DefaultPolicy",
    "Point",
    "PolicyHook",
    "PolicyRequest",
]

Point = Literal["edit", "promote", "install", "rollback"]
DEFAULT_POLICY_SET_HASH = hashlib.sha256(
    canonical.encode({"policy": "phasegate default: allow every edit and promotion"})
).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What is about to happen to a draft, as the policy sees it."""

    point: Point
    module: str
    draft: str | None  # install and rollback: None
    task: str | None
    actor: str
    paths: tuple[str, ...]  # edit: the paths this call changes; promote: every changed path
    files: int = 0  # promote: changed files, lines added and removed, and the diff's digest
    added: int = 0
    removed: int = 0
    diff_sha256: str | None = None
    base_version: int | None = None
    version: int | None = None  # install and rollback: the version the pointer moves to
    role: str = "operator"  # the caller's role (after a rollback window, only an admin may)


@dataclass(frozen=True, slots=True)
class Decision:
    """allow, deny (with a reason) or needs_approval (with the approval request)."""

    kind: Literal["allow", "deny", "needs_approval"]
    policy_set_hash: str
    reason: str = ""
    approval: dict[str, Any] | None = None
    risk: str | None = None
    rules: tuple[str, ...] = field(default_factory=tuple)  # the rules that decided
    code: Literal["POLICY_DENIED", "FORBIDDEN"] = "POLICY_DENIED"  # a denial's error code
    hint: str = ""  # what the caller can do next (a denial or a request)
    details: dict[str, Any] = field(default_factory=dict)  # what the rules found
    exceptions: tuple[dict[str, Any], ...] = ()  # exceptions that changed this decision
    notes: tuple[Record, ...] = ()  # entries to append with the decision (policy reloads)

    @classmethod
    def allow(cls, policy_set_hash: str, reason: str = "") -> Decision:
        return cls("allow", policy_set_hash, reason)

    @classmethod
    def deny(cls, policy_set_hash: str, reason: str, *rules: str) -> Decision:
        return cls("deny", policy_set_hash, reason, rules=rules)

    @classmethod
    def needs_approval(
        cls, policy_set_hash: str, reason: str, approval: dict[str, Any]
    ) -> Decision:
        return cls("needs_approval", policy_set_hash, reason, approval=approval)

    def ledger_fields(self) -> dict[str, Any]:
        """What the entry of an allowed change keeps of the decision that let it through."""
        return {
            "policy_set_hash": self.policy_set_hash,
            "risk": self.risk,
            "rules": list(self.rules),
            "approval": None if self.approval is None else self.approval.get("id"),
            "exceptions": list(self.exceptions),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.kind,
            "reason": self.reason,
            "policy_set_hash": self.policy_set_hash,
            "approval": self.approval,
            "risk": self.risk,
            "rules": list(self.rules),
            "exceptions": list(self.exceptions),
            "details": self.details,
        }


class PolicyHook(Protocol):
    """Decides one request. It is called inside the write transaction of the change it judges,
    so what it reads through `tx` (approvals, promotion counts) holds when the change commits;
    it must not write, and it raises nothing but PhasegateError (which refuses the call)."""

    def decide(self, request: PolicyRequest, tx: Tx) -> Decision: ...

    def approval_of(self, draft: str, tx: Tx) -> dict[str, Any] | None:
        """The draft's latest approval request as the agent sees it (None: never asked)."""
        ...


class DefaultPolicy:
    """Allows every edit and promotion (enforcer/policy/ is the real one)."""

    def decide(self, request: PolicyRequest, tx: Tx) -> Decision:
        return Decision.allow(DEFAULT_POLICY_SET_HASH, "no policy is configured")

    def approval_of(self, draft: str, tx: Tx) -> dict[str, Any] | None:
        return None
