"""Server-run verification: the configured test command runs against the current diff and its
results are recorded as server-produced VERIFY evidence (the only kind the VERIFY gate accepts).

The lease is extended to outlive the run, and the results are filed only if the task is still in
the phase and epoch the run started from.

    out = await verify_runs.run(caller, "T1")
    out["passed"], out["results"]["failed"]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import EvidenceMissingError
from ..ledger.ops import Ops
from ..model import Caller
from ..phases import Phase
from ..store import Tx
from .evidence import Evidence
from .gates import check_artifact
from .instruments import tracer
from .leases import Leases
from .phase_gate import read_evidence
from .verification import run_verification
from .work import Work, task_row

__all__ = ["VerifyRuns"]


class VerifyRuns:
    def __init__(self, work: Work, evidence: Evidence, leases: Leases) -> None:
        self.work = work
        self.evidence = evidence
        self.leases = leases

    async def run(self, caller: Caller, task: str, token: int | None = None) -> dict[str, Any]:
        """Run the configured test command against the current diff; record the results as
        server-produced VERIFY evidence. Returns the test_results document plus its record."""
        timeout = self.work.config.verify.timeout_s

        def prepare(tx: Tx, ops: Ops) -> tuple[str, int, str, int]:
            view = task_row(tx, task)
            lease_token = self.leases.guard(tx, ops, task, view.phase.value, token)
            diff = read_evidence(tx, task, Phase.IMPLEMENT.value, "git_diff.patch")
            if diff is None or not diff.valid:
                raise EvidenceMissingError(
                    "verify_run needs the change as a valid IMPLEMENT git_diff.patch first",
                    hint="record the diff with evidence_put(name='git_diff.patch') in IMPLEMENT",
                )
            row = self.leases.row(tx, task, view.phase.value)
            assert row is not None
            self.leases.extend_to(tx, ops, row, timeout + 60)  # the lease outlives the run
            return view.phase.value, view.epoch, diff.sha256, lease_token

        phase, epoch, subject, lease_token = await self.work.transact(caller, prepare)
        cwd = Path(self.work.config.verify.cwd)
        with tracer.start_as_current_span(
            "agent.verify", attributes={"phasegate.task.id": task}
        ) as span:
            run = await run_verification(
                list(self.work.config.verify.command),
                cwd,
                timeout,
                self.work.config.verify.max_log_bytes,
            )
            span.set_attributes(
                {
                    "phasegate.verify.exit_code": run.exit_code,
                    "phasegate.verify.passed": run.counts.passed,
                    "phasegate.verify.failed": run.counts.failed,
                    "phasegate.verify.reason": run.reason or "",
                }
            )
        results = run.results(subject)
        body = json.dumps(results, indent=2, sort_keys=True).encode()
        _, rec = await self.evidence.record(
            caller,
            task,
            Phase.VERIFY,
            [
                ("build_output.log", run.output, []),
                ("test_results.json", body, check_artifact("test_results.json", body)),
            ],
            "server",
            subject,
            lease_token,
            (phase, epoch),
        )
        return {
            "results": results,
            "record": rec.as_dict(),
            "passed": rec.valid,
            "problems": list(rec.problems),
        }
