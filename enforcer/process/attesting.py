"""Attesting: agents report the prompt they work under; admins re-baseline it.

The normalisation, hashing and drift rules live in `attestation`; this service runs each call as
one unit of work under the caller's lease.

    result = await attesting.attest(caller, "T1", prompt_text)
    result.status   # "baseline" | "match" | "drift"
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFoundError
from ..ledger.ops import Ops
from ..model import Caller
from ..store import Tx
from .attestation import Attestations, AttestResult, prompt_sha256
from .leases import Leases
from .work import MAX_REASON, Work, phase_arg, require_admin, task_row, text_arg

__all__ = ["Attesting"]


class Attesting:
    def __init__(self, work: Work, leases: Leases, attestations: Attestations) -> None:
        self.work = work
        self.leases = leases
        self.attestations = attestations

    async def attest(
        self, caller: Caller, task: str, prompt: str, token: int | None = None
    ) -> AttestResult:
        sha = prompt_sha256(prompt)

        def run(tx: Tx, ops: Ops) -> AttestResult:
            view = task_row(tx, task)
            self.leases.guard(tx, ops, task, view.phase.value, token)
            return self.attestations.attest(tx, ops, task, view.phase, sha)

        return await self.work.transact(caller, run)

    async def rebaseline(
        self,
        caller: Caller,
        task: str,
        reason: str,
        prompt: str | None = None,
        phase: str | None = None,
    ) -> dict[str, Any]:
        """Admin: accept the last reported prompt (or `prompt`) as the new baseline."""
        require_admin(caller, "re-baseline a prompt")
        reason = text_arg(reason, "reason", MAX_REASON)
        sha = None if prompt is None else prompt_sha256(prompt)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            view = task_row(tx, task)
            ph = view.phase.value if phase is None else phase_arg(phase, "phase").value
            new = sha
            if new is None:
                row = tx.one(
                    "SELECT last_sha256 FROM attestations WHERE task = ? AND phase = ?", (task, ph)
                )
                if row is None:
                    raise NotFoundError(
                        f"no prompt was attested for {task} {ph}",
                        hint="pass the prompt to baseline explicitly",
                    )
                new = str(row[0])
            version = self.attestations.rebaseline(tx, ops, task, ph, new, reason)
            return {"task": task, "phase": ph, "version": version, "sha256": new}

        return await self.work.transact(caller, run)
