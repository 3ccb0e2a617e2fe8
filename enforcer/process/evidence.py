"""Evidence: artifacts an agent (or the server) records for a task's phase.

Each artifact's bytes are content-addressed in `blobs/` and its record (sha256, size, epoch,
producer, subject digest, content-check result) is ledgered as `evidence.recorded` in the same
transaction that checks the task, its phase and the caller's lease. A readable copy is written
to ``evidence/<TASK>/<PHASE>/<name>`` afterwards.

    rec = await evidence.put(caller, "T1", "strategy.md", "# Problem\n...\n# Objectives\n...")
    rec.valid, rec.problems
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ..errors import ConflictError, InvalidArgumentError, NotFoundError, OutOfPhaseError
from ..ledger.ops import Ops, Record
from ..model import Caller, EvidenceRecord, check_task_id
from ..names import check_name
from ..phases import Phase
from ..store import Tx
from .evidence_files import EvidenceFiles
from .gates import check_artifact
from .leases import Leases
from .phase_gate import read_evidence
from .work import Work, phase_arg, task_row

__all__ = ["MAX_EVIDENCE_BYTES", "Evidence"]

logger = logging.getLogger(__name__)

MAX_EVIDENCE_BYTES = 2 * 1024 * 1024


class Evidence:
    def __init__(self, work: Work, files: EvidenceFiles, leases: Leases) -> None:
        self.work = work
        self.files = files
        self.leases = leases

    async def put(
        self, caller: Caller, task: str, name: str, content: str, token: int | None = None
    ) -> EvidenceRecord:
        check_task_id(task)
        check_name(name)
        if not isinstance(content, str):
            raise InvalidArgumentError("content must be a string", details={"argument": "content"})
        data = content.encode("utf-8", "surrogatepass")
        if len(data) > MAX_EVIDENCE_BYTES:
            raise InvalidArgumentError(
                f"content is {len(data)} bytes; the limit is {MAX_EVIDENCE_BYTES}",
                details={"argument": "content"},
            )
        problems = check_artifact(name, data, self.work.config.review.thresholds)
        recs = await self.record(caller, task, None, [(name, data, problems)], "agent", None, token)
        return recs[0]

    async def record(
        self,
        caller: Caller,
        task: str,
        phase: Phase | None,
        items: list[tuple[str, bytes, list[str]]],
        producer: str,
        subject: str | None,
        token: int | None,
        expect: tuple[str, int] | None = None,
    ) -> list[EvidenceRecord]:
        """Record artifacts in one transaction, into `phase` (default: the current phase).

        `expect` = (phase, epoch) the task must still be at: a long-running producer
        (verify_run) never files results into a phase the task has since left.
        """
        # Bytes first, then records: staged now, published by the recording unit once its checks
        # pass. The unit discards them itself when it refuses, so a call cancelled while its unit
        # waits for a group commit (the unit still runs later) never strands them.
        staged = [self.files.stage_blob(data) for _, data, _ in items]

        def run(tx: Tx, ops: Ops) -> list[EvidenceRecord]:
            try:
                view = task_row(tx, task)
                if view.phase is Phase.DONE:
                    raise OutOfPhaseError(f"{task} is DONE; it takes no more evidence")
                if expect is not None and (view.phase.value, view.epoch) != expect:
                    raise ConflictError(
                        f"{task} moved to {view.phase.value} (epoch {view.epoch}) while this ran",
                        hint="the result is discarded; run it again in the current phase",
                    )
                lease_token = self.leases.guard(tx, ops, task, view.phase.value, token)
                for blob in staged:
                    self.files.publish(blob)
            except BaseException:
                for blob in staged:
                    self.files.discard(blob)
                raise
            target = (phase or view.phase).value
            out = []
            for (name, data, problems), blob in zip(items, staged, strict=True):
                fields: dict[str, Any] = {
                    "name": name,
                    "sha256": blob.sha256,
                    "size": len(data),
                    "epoch": view.epoch,
                    "producer": producer,
                    "valid": not problems,
                    "problems": problems[:20],
                }
                if subject is not None:
                    fields["subject_sha256"] = subject
                ops.emit(
                    tx,
                    Record(
                        "evidence.recorded",
                        {"task": task, "phase": target},
                        fields,
                        {"lease_token": lease_token},
                    ),
                )
                rec = read_evidence(tx, task, target, name)
                assert rec is not None
                out.append(rec)
            return out

        try:
            recs = await self.work.transact(caller, run)
        except asyncio.CancelledError:
            raise  # the unit may still run from the group-commit queue: it cleans up then
        except BaseException:
            for blob in staged:  # the unit never ran, or has cleaned up already
                self.files.discard(blob)
            raise
        for rec, (name, data, _) in zip(recs, items, strict=True):
            # The record is committed and its blob written: the readable copy is derived from
            # them, so failing to write it must not turn a recorded artifact into an error.
            try:
                self.files.materialise(task, rec.phase, name, data)
            except OSError as e:
                logger.error(
                    "recorded %s %s %s but could not copy it out: %s", task, rec.phase, name, e
                )
        return recs

    async def refresh_copies(self) -> int:
        """Rewrite the readable copies that a server killed between recording an artifact and
        copying it out left behind (missing, or at the previous version); the server does this
        when it starts. Returns how many were written."""
        rows = await self.work.store.peek(
            lambda tx: tx.all("SELECT task, phase, name, sha256, ts FROM evidence")
        )
        records = [
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]), datetime.fromisoformat(r[4]).timestamp())
            for r in rows
        ]
        return await asyncio.to_thread(self.files.refresh, records)

    async def list_for(self, task: str, phase: str | None = None) -> list[EvidenceRecord]:
        check_task_id(task)
        ph = None if phase is None else phase_arg(phase, "phase").value

        def run(tx: Tx) -> list[EvidenceRecord]:
            task_row(tx, task)
            rows = tx.all(
                "SELECT phase, name FROM evidence WHERE task = ?"
                + ("" if ph is None else " AND phase = ?")
                + " ORDER BY seq",
                (task,) if ph is None else (task, ph),
            )
            found = [read_evidence(tx, task, r[0], r[1]) for r in rows]
            return [r for r in found if r is not None]

        return await self.work.store.peek(run)

    async def read(self, task: str, phase: str, name: str) -> tuple[EvidenceRecord, bytes]:
        check_task_id(task)
        check_name(name)
        ph = phase_arg(phase, "phase").value
        rec = await self.work.store.peek(lambda tx: read_evidence(tx, task, ph, name))
        if rec is None:
            raise NotFoundError(
                f"no evidence {name} in {task} {ph}", hint="evidence_list shows what is recorded"
            )
        return rec, self.files.read_blob(rec.sha256)
