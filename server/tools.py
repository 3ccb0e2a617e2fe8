"""Tool handlers: each adapts one enforcer call to the tool's result shape. No checks here —
the router has done them, and the enforcer does the rest inside its transactions."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mcp_types import CallToolResult

from enforcer.errors import LedgerFaultError, StorageFullError, WritesRefusedError
from enforcer.ledger.verify import verify_state
from enforcer.process.gates import shape_hint

from .catalogue import (
    EvidenceListArgs,
    EvidencePutArgs,
    EvidenceReadArgs,
    LeaseAcquireArgs,
    LedgerTailArgs,
    NoArgs,
    PhaseAdvanceArgs,
    PhaseBacktrackArgs,
    PromptAttestArgs,
    TaskArgs,
    TaskListArgs,
    TaskStartArgs,
    TaskWriteArgs,
)
from .context import CallContext
from .module_tools import MODULE_HANDLERS

__all__ = ["HANDLERS"]


def _status(ctx: CallContext, report: Any, frozen: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = report.as_dict()
    out["tools_allowed"] = ctx.router.allowed_now(report.task.phase, ctx.caller, frozen)
    if frozen:
        out["hints"].append(
            "phasegate refuses every change now (frozen): only read-only tools work;"
            " controls_status says why"
        )
    elif report.gate.passed and report.next_phase is not None:
        out["hints"].append(f"gate passes: phase_advance moves to {report.next_phase.value}")
    return out


async def task_start(ctx: CallContext, a: TaskStartArgs) -> dict[str, Any]:
    return _status(ctx, await ctx.enforcer.task_start(ctx.caller, a.title, a.task))


async def task_status(ctx: CallContext, a: TaskArgs) -> CallToolResult:
    report = await ctx.enforcer.task_status(a.task)
    frozen = await ctx.router.writes_refused()
    # The payload depends on the report, the caller's role and the freeze (tools_allowed).
    key = ("task_status", a.task, ctx.caller.role, frozen)
    return ctx.router.rendered(key, report, lambda: _status(ctx, report, frozen))


async def task_list(ctx: CallContext, a: TaskListArgs) -> dict[str, Any]:
    return {"tasks": await ctx.enforcer.task_list(a.phase)}


async def lease_acquire(ctx: CallContext, a: LeaseAcquireArgs) -> dict[str, Any]:
    return (await ctx.enforcer.lease_acquire(ctx.caller, a.task, a.ttl_s)).as_dict()


async def lease_renew(ctx: CallContext, a: LeaseAcquireArgs) -> dict[str, Any]:
    return (await ctx.enforcer.lease_renew(ctx.caller, a.task, a.ttl_s)).as_dict()


async def lease_release(ctx: CallContext, a: TaskArgs) -> dict[str, Any]:
    return await ctx.enforcer.lease_release(ctx.caller, a.task)


async def evidence_put(ctx: CallContext, a: EvidencePutArgs) -> dict[str, Any]:
    rec = await ctx.enforcer.evidence_put(ctx.caller, a.task, a.name, a.content, a.fencing_token)
    out = rec.as_dict()
    if not rec.valid:
        out["expected"] = shape_hint(a.name)
    return out


async def evidence_list(ctx: CallContext, a: EvidenceListArgs) -> dict[str, Any]:
    return {"evidence": [r.as_dict() for r in await ctx.enforcer.evidence_list(a.task, a.phase)]}


async def evidence_read(ctx: CallContext, a: EvidenceReadArgs) -> dict[str, Any]:
    rec, data = await ctx.enforcer.evidence_read(a.task, a.phase, a.name)
    return {"record": rec.as_dict(), "content": data.decode("utf-8", "replace")}


async def prompt_attest(ctx: CallContext, a: PromptAttestArgs) -> dict[str, Any]:
    report = await ctx.enforcer.prompt_attest(ctx.caller, a.task, a.prompt, a.fencing_token)
    return report.as_dict()


async def phase_advance(ctx: CallContext, a: PhaseAdvanceArgs) -> dict[str, Any]:
    report = await ctx.enforcer.phase_advance(ctx.caller, a.task, a.to, a.fencing_token)
    return _status(ctx, report)


async def phase_backtrack(ctx: CallContext, a: PhaseBacktrackArgs) -> dict[str, Any]:
    report = await ctx.enforcer.phase_backtrack(ctx.caller, a.task, a.to, a.reason, a.fencing_token)
    return _status(ctx, report)


async def verify_run(ctx: CallContext, a: TaskWriteArgs) -> dict[str, Any]:
    return await ctx.enforcer.verify_run(ctx.caller, a.task, a.fencing_token)


async def ledger_tail(ctx: CallContext, a: LedgerTailArgs) -> dict[str, Any]:
    entries = await ctx.enforcer.ledger.tail(a.limit, a.task)
    return {"entries": [e.as_dict() for e in entries]}


async def ledger_verify(ctx: CallContext, a: NoArgs) -> dict[str, Any]:
    # Refused writes, or no room for a checkpoint: verify what is there.
    with contextlib.suppress(WritesRefusedError, StorageFullError):
        await ctx.enforcer.ledger.checkpoint()  # verify up to now, against a fresh signed root
    try:
        rt = ctx.enforcer.rt
        report = await asyncio.to_thread(verify_state, rt.paths.root, rt.store_url)
    except LedgerFaultError as e:
        return {"ok": False, "fault": e.kind, "seq": e.seq, "message": e.message}
    return report.as_dict()


async def controls_status(ctx: CallContext, a: NoArgs) -> dict[str, Any]:
    out = await ctx.enforcer.controls()
    refusal = ctx.enforcer.ledger.refusal
    if refusal is not None:  # not the freeze, but every change is refused just the same
        out["writes_refused"] = {"message": refusal.message, "hint": refusal.hint}
    return out


HANDLERS = {
    f.__name__: f
    for f in (
        task_start,
        task_status,
        task_list,
        lease_acquire,
        lease_renew,
        lease_release,
        evidence_put,
        evidence_list,
        evidence_read,
        prompt_attest,
        phase_advance,
        phase_backtrack,
        verify_run,
        ledger_tail,
        ledger_verify,
        controls_status,
    )
} | MODULE_HANDLERS
