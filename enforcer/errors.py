"""Every refusal phasegate can make, each carrying its contract code (DESIGN.md, Error contract).

The tree::

    PhasegateError                      (code: INTERNAL unless a subclass says otherwise)
    ├── InvalidArgumentError            INVALID_ARGUMENT   bad shape, type, size or name
    ├── NotFoundError                   NOT_FOUND
    ├── ConflictError                   CONFLICT           lost a race or a uniqueness rule
    ├── OutOfPhaseError                 OUT_OF_PHASE
    ├── PhaseSkipError                  PHASE_SKIP
    ├── EvidenceMissingError            EVIDENCE_MISSING
    ├── EvidenceInvalidError            EVIDENCE_INVALID
    ├── LeaseRequiredError              LEASE_REQUIRED
    ├── LeaseHeldError                  LEASE_HELD
    ├── LeaseExpiredError               LEASE_EXPIRED
    ├── StaleTokenError                 STALE_TOKEN
    ├── PromptDriftError                PROMPT_DRIFT
    ├── ForbiddenError                  FORBIDDEN
    ├── FrozenError                     FROZEN
    │   └── WritesRefusedError          FROZEN             not the freeze: the ledger or the disk
    │                                                      can no longer be trusted (`cause`)
    ├── PromotionPausedError            PROMOTION_PAUSED
    ├── ApprovalRequiredError           APPROVAL_REQUIRED  a person must approve first
    ├── PolicyDeniedError               POLICY_DENIED
    ├── NotValidatedError               NOT_VALIDATED
    ├── AttestationInvalidError         ATTESTATION_INVALID
    ├── StoreError                      INTERNAL           the database could not be used
    │   └── StorageFullError            STORAGE_FULL       no space left: nothing was changed
    └── LedgerFaultError                INTERNAL           raised by the verifier; has a `kind`

A refusal is a domain outcome, not a crash: callers translate it into a structured tool result
``{"error": {"code", "message", "hint", "details"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApprovalRequiredError",
    "AttestationInvalidError",
    "ConflictError",
    "EvidenceInvalidError",
    "EvidenceMissingError",
    "ForbiddenError",
    "FrozenError",
    "InvalidArgumentError",
    "LeaseExpiredError",
    "LeaseHeldError",
    "LeaseRequiredError",
    "LedgerFaultError",
    "NotFoundError",
    "NotValidatedError",
    "OutOfPhaseError",
    "PhaseSkipError",
    "PhasegateError",
    "PolicyDeniedError",
    "PromotionPausedError",
    "PromptDriftError",
    "StaleTokenError",
    "StorageFullError",
    "StoreError",
    "WritesRefusedError",
]


class PhasegateError(Exception):
    """Base of every phasegate refusal; `code` is the wire contract, `hint` says what to do."""

    code: ClassVar[str] = "INTERNAL"

    def __init__(
        self, message: str, *, hint: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})

    def to_body(self) -> dict[str, Any]:
        """The structured error body of the contract."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "hint": self.hint,
                "details": self.details,
            }
        }


class InvalidArgumentError(PhasegateError):
    code = "INVALID_ARGUMENT"


class NotFoundError(PhasegateError):
    code = "NOT_FOUND"


class ConflictError(PhasegateError):
    code = "CONFLICT"


class OutOfPhaseError(PhasegateError):
    code = "OUT_OF_PHASE"


class PhaseSkipError(PhasegateError):
    code = "PHASE_SKIP"


class EvidenceMissingError(PhasegateError):
    code = "EVIDENCE_MISSING"


class EvidenceInvalidError(PhasegateError):
    code = "EVIDENCE_INVALID"


class LeaseRequiredError(PhasegateError):
    code = "LEASE_REQUIRED"


class LeaseHeldError(PhasegateError):
    code = "LEASE_HELD"


class LeaseExpiredError(PhasegateError):
    code = "LEASE_EXPIRED"


class StaleTokenError(PhasegateError):
    code = "STALE_TOKEN"


class PromptDriftError(PhasegateError):
    code = "PROMPT_DRIFT"


class ForbiddenError(PhasegateError):
    code = "FORBIDDEN"


class FrozenError(PhasegateError):
    code = "FROZEN"


class WritesRefusedError(FrozenError):
    """Every write is refused, reads still work, until a supervisor acts — for a cause other than
    the freeze, so `phasegate unfreeze` does not lift it and the hint says what does.

    `details.cause` is ``ledger`` (the ledger is shorter than, or diverges from, a signed
    checkpoint; `details.fault` and `details.seq` as in LedgerFaultError) or ``storage`` (the
    disk failed a sync, so recent commits may be lost). An agent sees FROZEN: no state may
    change now, whatever it retries.
    """

    def __init__(self, cause: str, message: str, *, hint: str, **details: Any) -> None:
        super().__init__(message, hint=hint, details={"cause": cause, **details})
        self.cause = cause


class PromotionPausedError(PhasegateError):
    code = "PROMOTION_PAUSED"


class ApprovalRequiredError(PhasegateError):
    code = "APPROVAL_REQUIRED"


class PolicyDeniedError(PhasegateError):
    code = "POLICY_DENIED"


class NotValidatedError(PhasegateError):
    code = "NOT_VALIDATED"


class AttestationInvalidError(PhasegateError):
    code = "ATTESTATION_INVALID"


class StoreError(PhasegateError):
    """The database could not be opened, read or written (translated from sqlite3)."""


class StorageFullError(StoreError):
    """The disk (or quota) holding the state directory is full: the write was not made.

    Not a fault of phasegate and not lasting: once space is freed the same call succeeds."""

    code = "STORAGE_FULL"


class LedgerFaultError(PhasegateError):
    """The ledger or a checkpoint does not verify; `kind` names the fault, `seq` the first bad one.

    Kinds: ``canonical`` (bytes are not the RFC 8785 form of their JSON), ``hash`` (stored leaf
    hash differs), ``link`` (``prev`` is not the previous leaf hash), ``seq`` (gap, duplicate or
    reordering), ``truncated`` (shorter than a signed checkpoint), ``root`` (a checkpoint's signed
    root differs from the recomputed one: the ledger was re-chained), ``signature`` (a checkpoint
    signature does not verify), ``schema`` (an entry lacks a required field).
    """

    def __init__(self, kind: str, message: str, *, seq: int | None = None) -> None:
        super().__init__(message, details={"kind": kind, "seq": seq})
        self.kind = kind
        self.seq = seq
