"""Validation: the module's registered validator runs in the sandbox over a copy of a draft.

The validator's argv is the supervisor's (``phasegate module add … -- VALIDATOR ARGV``), never
an agent's. The draft's files are written to a fresh temporary directory (each blob checked
against its digest), `sandbox.run_sandboxed` copies that again and runs the validator there
under the best isolation the host allows, with the module's time limit. The report — exit code,
output tails, duration, limits, isolation, bound to the validated ``bundle_sha256`` — is stored
as a blob and ledgered (``draft.validated`` or ``draft.validation_failed``). The outcome counts
only for the bundle it ran on: an edit while it ran, or after it, leaves the draft EDITING.
The run is an ``agent.verify`` span.

    result = await validation.validate(me, "skills-d1")
    result["state"], result["report"]["exit_code"], result["report"]["isolation"]
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConflictError, PhasegateError
from ..ledger import canonical
from ..ledger.ops import Ops, Record
from ..model import Caller
from ..names import check_draft_id
from ..process.instruments import tracer
from ..process.work import task_row
from ..store import Tx
from .drafts import require_open
from .lifecycle import Lifecycle
from .manifest import Manifest
from .records import DraftRow, draft_row, module_row
from .sandbox import Limits, run_sandboxed

__all__ = ["REPORT_TYPE", "Validation"]

REPORT_TYPE = "phasegate.validation/v1"


def write_draft_tree(root: Path, manifest: Manifest, content: Any) -> None:
    """The draft's files under `root` (a fresh directory), as the validator will see them."""
    for path, entry in manifest.files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content(entry.sha256))
        target.chmod(entry.mode)


class Validation:
    def __init__(self, kit: Lifecycle) -> None:
        self.kit = kit
        self._running: set[str] = set()  # drafts being validated by this process

    async def validate(self, caller: Caller, draft: str) -> dict[str, Any]:
        check_draft_id(draft)
        if draft in self._running:
            raise ConflictError(
                f"draft {draft} is being validated already",
                hint="wait for that run's result; draft_show shows the state",
            )
        self._running.add(draft)
        try:
            return await self._validate(caller, draft)
        finally:
            self._running.discard(draft)

    async def _validate(self, caller: Caller, draft: str) -> dict[str, Any]:
        def start(tx: Tx, ops: Ops) -> tuple[DraftRow, tuple[str, ...], int, str, int]:
            row = draft_row(tx, draft)
            require_open(row)
            module = module_row(tx, row.module)
            phase = task_row(tx, row.task).phase.value
            token = self.kit.hold_task(tx, ops, row.task)
            lease = self.kit.leases.row(tx, row.task, phase)
            assert lease is not None
            self.kit.leases.extend_to(tx, ops, lease, module.timeout_s + 60)  # outlive the run
            subject = {"module": row.module, "draft": row.draft, "task": row.task}
            ops.emit(
                tx,
                Record("draft.validation_started", subject, {"bundle_sha256": row.bundle_sha256}),
            )
            return row, module.validator, module.timeout_s, phase, token

        row, argv, timeout_s, phase, token = await self.kit.work.transact(caller, start)
        manifest = self.kit.manifest(row.bundle_sha256)
        with tracer.start_as_current_span(
            "agent.verify",
            attributes={"phasegate.task.id": row.task, "phasegate.draft": row.draft},
        ) as span:
            report = await self._run(row, manifest, argv, timeout_s)
            span.set_attributes(
                {
                    "phasegate.verify.exit_code": report.get("exit_code") or -1,
                    "phasegate.verify.passed": bool(report["passed"]),
                    "phasegate.sandbox.isolation": str(report.get("isolation")),
                }
            )
        raw = canonical.encode(report)
        staged = self.kit.blobs.stage(raw)
        passed = bool(report["passed"])

        def finish(tx: Tx, ops: Ops) -> dict[str, Any]:
            try:
                self.kit.leases.guard(tx, ops, row.task, phase, token)
                self.kit.blobs.publish(staged)
            except BaseException:
                self.kit.blobs.discard(staged)
                raise
            subject = {"module": row.module, "draft": row.draft, "task": row.task}
            data = {
                "bundle_sha256": row.bundle_sha256,
                "report_sha256": staged.sha256,
                "exit_code": report.get("exit_code"),
                "stopped_by": report.get("stopped_by"),
                "isolation": report.get("isolation"),
                "sandboxed": report.get("sandboxed"),
                "duration_ms": report.get("duration_ms"),
            }
            kind = "draft.validated" if passed else "draft.validation_failed"
            ops.emit(tx, Record(kind, subject, data))
            now = draft_row(tx, row.draft)
            return {
                "draft": row.draft,
                "state": "VALIDATED" if passed else "FAILED",
                "current": now.bundle_sha256 == row.bundle_sha256,
                "draft_state": now.state.value,
                "bundle_sha256": row.bundle_sha256,
                "report_sha256": staged.sha256,
                "report": report,
            }

        try:
            return await self.kit.work.transact(caller, finish)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self.kit.blobs.discard(staged)
            raise

    async def _run(
        self, row: DraftRow, manifest: Manifest, argv: tuple[str, ...], timeout_s: int
    ) -> dict[str, Any]:
        """The report document of one sandboxed run (a failure to start is a failed report)."""
        head: dict[str, Any] = {
            "type": REPORT_TYPE,
            "module": row.module,
            "draft": row.draft,
            "bundle_sha256": row.bundle_sha256,
        }
        root = Path(tempfile.mkdtemp(prefix="phasegate-draft-"))
        try:
            await asyncio.to_thread(write_draft_tree, root, manifest, self.kit.content)
            limits = Limits(timeout_s=float(timeout_s), cpu_s=max(1, timeout_s))
            try:
                result = await run_sandboxed(list(argv), root, limits)
            except PhasegateError as e:
                return {**head, "passed": False, "exit_code": None, "error": e.message}
            return {**head, **result.as_dict()}
        finally:
            await asyncio.to_thread(shutil.rmtree, root, True)
