"""Promotion: a VALIDATED draft becomes the module's next immutable, signed version.

Only a draft whose current bundle is exactly the one its validator passed on may be promoted
(else NOT_VALIDATED), and only from the module's newest version (else CONFLICT until
`draft_rebase`). The promotion pause is checked before anything starts and again in the
transaction that records the version, right before the pointer moves; the freeze is checked
in every transaction (`Work.transact`). The policy hook decides (allow, deny → POLICY_DENIED,
needs approval → APPROVAL_REQUIRED with ``details.approval``); every refusal is ledgered
(``promotion.blocked``, ``promotion.rejected``, ``promotion.requested``). Then every file's
blob is checked, the in-toto statement is signed into a DSSE envelope (a blob), and
``promotion.promoted`` records version N+1 with its hashes. Promotions of one module are
serialised: in this process by a lock, across processes by the store's write transaction,
which refuses a second promotion from the same base.

    out = await promotions.promote(me, "skills-d1")
    out["version"], out["bundle_sha256"], out["attestation_sha256"]
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictError, NotValidatedError, PhasegateError, PromotionPausedError
from ..ledger.ops import Ops, Record, Refused
from ..model import Caller
from ..names import check_draft_id
from ..process.control_rows import require_unpaused
from ..store import Tx
from . import halt_points
from .attestation import sign_statement, statement
from .blobs import StagedBlob
from .diffs import Diff, manifest_diff
from .lifecycle import Lifecycle
from .manifest import Manifest
from .policy_hook import Decision, PolicyRequest
from .records import DraftRow, DraftState, draft_row, module_row, version_row

__all__ = ["Promotions"]


@dataclass(frozen=True, slots=True)
class _Plan:
    row: DraftRow
    version: int
    anchor: dict[str, Any]
    decision: Decision


def _subject(row: DraftRow) -> dict[str, Any]:
    return {"module": row.module, "draft": row.draft, "task": row.task}


class Promotions:
    def __init__(self, kit: Lifecycle) -> None:
        self.kit = kit

    async def promote(self, caller: Caller, draft: str) -> dict[str, Any]:
        check_draft_id(draft)
        row = await self.kit.work.store.peek(lambda tx: draft_row(tx, draft))
        async with self.kit.lock(row.module):
            return await self._promote(caller, row)

    async def _promote(self, caller: Caller, first: DraftRow) -> dict[str, Any]:
        base, current, diff = await self._diff(first)
        if diff.files == 0:
            raise ConflictError(
                f"draft {first.draft} changes nothing against v{first.base_version}",
                hint="a version must differ from its source; draft_discard the draft",
            )
        plan = await self.kit.work.transact(
            caller, lambda tx, ops: self._rules(tx, ops, first, diff)
        )
        staged = await asyncio.to_thread(self._attest, plan, current, diff, caller.actor)
        try:
            await halt_points.reach("promote:signed")

            def record(tx: Tx, ops: Ops) -> dict[str, Any]:
                try:
                    again = self._rules(tx, ops, first, diff)
                    if again.version != plan.version or (
                        again.decision.policy_set_hash != plan.decision.policy_set_hash
                    ):
                        raise ConflictError(
                            "the module or its policy changed during the promotion",
                            hint="call draft_promote again",
                        )
                    self.kit.blobs.publish(staged)
                except BaseException:
                    self.kit.blobs.discard(staged)
                    raise
                data = {
                    "version": plan.version,
                    "bundle_sha256": first.bundle_sha256,
                    "attestation_sha256": staged.sha256,
                    "report_sha256": first.report_sha256,
                    "source_version": first.base_version,
                    "diff_sha256": diff.sha256,
                    "files": len(current),
                    "bytes": current.total_bytes,
                    "decision": plan.decision.kind,
                    **plan.decision.ledger_fields(),
                }
                ops.emit(tx, Record("promotion.promoted", _subject(first), data))
                return {"draft": first.draft, "module": first.module, **data}

            return await self.kit.work.transact(caller, record)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self.kit.blobs.discard(staged)
            raise

    def _rules(self, tx: Tx, ops: Ops, first: DraftRow, diff: Diff) -> _Plan:
        """Every rule a promotion must pass, read in `tx`; refusals raise Refused (ledgered)."""
        row = draft_row(tx, first.draft)

        def blocked(error: PhasegateError) -> Refused:
            data = {"code": error.code, "bundle_sha256": row.bundle_sha256}
            return Refused(error, Record("promotion.blocked", _subject(row), data))

        if row.state is DraftState.PROMOTED:
            raise ConflictError(
                f"draft {row.draft} is already version {row.version}",
                hint="module_install installs it; draft_create starts a new change",
                details={"version": row.version},
            )
        if not row.validated or row.bundle_sha256 != first.bundle_sha256:
            raise blocked(
                NotValidatedError(
                    f"draft {row.draft} is {row.state.value}: only a draft whose current"
                    " content passed its validator can be promoted",
                    hint="draft_validate(draft) runs the module's validator on it (in"
                    " IMPLEMENT or VERIFY)",
                    details={"state": row.state.value},
                )
            )
        module = module_row(tx, row.module)
        if row.base_version != module.newest_version:
            raise blocked(
                ConflictError(
                    f"draft {row.draft} is based on v{row.base_version}; the newest version is"
                    f" v{module.newest_version}",
                    hint="draft_rebase(draft) replays the draft onto the newest version; then"
                    " validate it again",
                    details={"base_version": row.base_version, "newest": module.newest_version},
                )
            )
        try:
            require_unpaused(tx)
        except PromotionPausedError as e:
            raise blocked(e) from None
        self.kit.hold_task(tx, ops, row.task)
        request = PolicyRequest(
            "promote",
            row.module,
            row.draft,
            row.task,
            ops.caller.actor,
            tuple(c["path"] for c in diff.changes),
            diff.files,
            diff.added,
            diff.removed,
            diff.sha256,
            row.base_version,
            role=ops.caller.role,
        )
        facts = {"bundle_sha256": row.bundle_sha256, "diff_sha256": diff.sha256}
        decision = self.kit.obey(
            tx,
            ops,
            request,
            denied=Record("promotion.rejected", _subject(row), facts),
            requested=Record("promotion.requested", _subject(row), facts),
        )
        anchor_row = tx.one("SELECT seq, leaf_hash FROM ledger WHERE seq = ?", (row.validated_seq,))
        assert anchor_row is not None  # a VALIDATED draft names the entry that validated it
        anchor = {"seq": int(anchor_row[0]), "leaf_hash": str(anchor_row[1])}
        return _Plan(row, module.newest_version + 1, anchor, decision)

    async def _diff(self, row: DraftRow) -> tuple[Manifest, Manifest, Diff]:
        bundle = await self.kit.work.store.peek(
            lambda tx: version_row(tx, row.module, row.base_version).bundle_sha256
        )
        base, current = self.kit.manifest(bundle), self.kit.manifest(row.bundle_sha256)
        diff = await asyncio.to_thread(manifest_diff, base, current, self.kit.content)
        return base, current, diff

    def _attest(self, plan: _Plan, current: Manifest, diff: Diff, actor: str) -> StagedBlob:
        """Check every file's blob, sign the statement, stage the envelope (on a thread)."""
        for entry in current.files.values():
            self.kit.content(entry.sha256)  # StoreError when a blob is gone or altered
        row = plan.row
        predicate = {
            "module": row.module,
            "version": plan.version,
            "source_version": row.base_version,
            "draft": row.draft,
            "task": row.task,
            "diff_sha256": diff.sha256,
            "validation_report_sha256": row.report_sha256,
            "approval": plan.decision.approval,
            "policy_set_hash": plan.decision.policy_set_hash,
            "actor": actor,
            "ledger_anchor": plan.anchor,
        }
        stmt = statement(row.module, plan.version, row.bundle_sha256, predicate)
        return self.kit.blobs.stage(sign_statement(stmt, self.kit.signer))

    async def policy_check(self, draft: str, caller: Caller | None = None) -> dict[str, Any]:
        """What the policy would decide on promoting `draft` now, and why (no side effect).

        `caller`: who would promote (per-actor limits); by default the draft's creator."""
        check_draft_id(draft)
        row = await self.kit.work.store.peek(lambda tx: draft_row(tx, draft))
        _, _, diff = await self._diff(row)

        actor = row.created_by if caller is None else caller.actor
        role = "operator" if caller is None else caller.role

        def decide(tx: Tx) -> tuple[Decision, Decision]:
            request = PolicyRequest(
                "promote",
                row.module,
                row.draft,
                row.task,
                actor,
                tuple(c["path"] for c in diff.changes),
                diff.files,
                diff.added,
                diff.removed,
                diff.sha256,
                row.base_version,
                role=role,
            )
            # And what installing the version it would become would meet now (windows).
            install = PolicyRequest(
                "install", row.module, row.draft, row.task, actor, (), role=role
            )
            return self.kit.policy.decide(request, tx), self.kit.policy.decide(install, tx)

        decision, install = await self.kit.work.store.read(decide)
        return {
            "draft": row.draft,
            "module": row.module,
            "state": row.state.value,
            "validated": row.validated,
            **decision.as_dict(),
            "install": install.as_dict(),
            "diff_sha256": diff.sha256,
            "files": diff.files,
            "added": diff.added,
            "removed": diff.removed,
        }
