"""The tool router: the single choke point every agent tool call passes through.

For each call, in order: validate the arguments against the tool's model; check the caller's
role; refuse a mutating call that names no task; for calls that change state or are limited to
some phases, read the task's phase and the global freeze in one snapshot and refuse a frozen
or out-of-phase call; then run the handler (whose enforcer call checks the lease in the same
transaction as its write). Every outcome is journaled to
``state/evidence/<TASK>/journal.jsonl``; every refusal becomes a structured error result,
is ledgered as ``tool.rejected`` (so it is counted by code; one caller's identical refusals are
coalesced into a counted entry, see enforcer/process/refusals.py) and changes nothing else. An
unexpected exception becomes INTERNAL with a correlation id that is also in the server log.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from mcp_types import CallToolResult, TextContent
from opentelemetry import metrics, trace
from pydantic import ValidationError

from enforcer.clock import rfc3339
from enforcer.errors import (
    ForbiddenError,
    FrozenError,
    InvalidArgumentError,
    NotFoundError,
    OutOfPhaseError,
    PhasegateError,
    StoreError,
    WritesRefusedError,
)
from enforcer.ledger.ops import Record
from enforcer.model import Caller, lease_token_var, ledger_seq_var, trace_id_var
from enforcer.phases import Phase
from enforcer.service import Enforcer

from .bounds import check_bounds
from .catalogue import ALL_PHASES, Handler, ToolSpec
from .context import CallContext
from .journal import Journal

__all__ = ["InternalError", "Router", "error_result"]

logger = logging.getLogger(__name__)
tracer = trace.get_tracer("phasegate")
# MCP semantic conventions: operation duration in seconds with these bucket boundaries.
_DURATION = metrics.get_meter("phasegate").create_histogram(
    "mcp.server.operation.duration",
    unit="s",
    description="duration of an MCP request as seen by the server",
    explicit_bucket_boundaries_advisory=[
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        30,
        60,
        120,
        300,
    ],
)
_RENDERED_SIZE = 1024  # results kept by Router.rendered (one per task and role in use)
# The phase the task is in after the call (for the span); set by handlers that know it.
phase_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "phasegate_phase", default=None
)


class InternalError(PhasegateError):
    """An unexpected failure, reported with a correlation id instead of a traceback."""


def error_result(error: PhasegateError) -> CallToolResult:
    """A refusal as the contract says: `isError` and the JSON body as its one text content, with
    no `structuredContent` — clients validate that against the tool's output schema even on
    errors (the MCP Inspector does), and an error body would read as a schema violation."""
    body = error.to_body()
    return CallToolResult(
        is_error=True,
        content=[TextContent(type="text", text=json.dumps(body))],
    )


# Built once: json.dumps with keyword arguments builds a new encoder on every call.
_TEXT = json.JSONEncoder(separators=(",", ":"))
_ARGS = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)


def ok_result(payload: dict[str, Any]) -> CallToolResult:
    """The payload as structured content, and (for clients that read only text) as compact JSON
    text, as the MCP spec asks of a tool with structured results."""
    return CallToolResult(
        structured_content=payload,
        content=[TextContent(type="text", text=_TEXT.encode(payload))],
    )


def _args_sha256(arguments: Any) -> str:
    try:
        raw = _ARGS.encode(arguments)
    except (TypeError, ValueError, RecursionError):
        try:
            raw = repr(arguments)
        except (ValueError, RecursionError):  # an int past the digit limit has no repr either
            raw = repr(_outline(arguments))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _outline(arguments: Any) -> Any:
    """What is hashed of arguments past a bound (hashing all of them could take seconds): their
    type and size, and for an object its first keys."""
    if isinstance(arguments, dict):
        return {"keys": len(arguments), "first": [str(k)[:64] for k in list(arguments)[:8]]}
    return {"type": type(arguments).__name__}


def _validation_error(spec: ToolSpec, e: ValidationError) -> InvalidArgumentError:
    # Field names and error kinds only: the rejected values are the caller's data.
    problems = [
        {
            "argument": ".".join(str(p) for p in err["loc"]) or "$",
            "problem": err["type"],
            "message": err["msg"],
        }
        for err in e.errors(include_input=False, include_url=False)
    ][:10]
    fields = list(spec.args.model_fields)  # the hint names them; their types are in the schema
    first = problems[0] if problems else {"argument": "$", "message": "invalid"}
    return InvalidArgumentError(
        f"{spec.name}: {first['argument']}: {first['message']}",
        hint=f"{spec.name} takes {', '.join(fields) or 'no arguments'}",
        details={"problems": problems},
    )


class Router:
    def __init__(
        self,
        enforcer: Enforcer,
        table: Mapping[str, ToolSpec],
        handlers: Mapping[str, Handler],
        journal: Journal,
    ) -> None:
        missing = {t.handler_name for t in table.values()} - set(handlers)
        if missing:
            raise ValueError(f"tools without handlers: {sorted(missing)}")
        self.enforcer = enforcer
        self.table = dict(table)
        self.handlers = dict(handlers)
        self.journal = journal
        self._allowed: dict[tuple[Phase | None, str, bool], list[str]] = {}
        self._unreadable_logged = False
        self._rendered: dict[Hashable, tuple[object, CallToolResult]] = {}

    def rendered(
        self, key: Hashable, source: object, payload: Callable[[], dict[str, Any]]
    ) -> CallToolResult:
        """The result for `key`, rendered from `source` once and reused while the handler gets
        the very same `source` object back. The enforcer serves an unchanged status as the same
        object, so a repeated `task_status` builds no payload and encodes no JSON; any change
        yields a new object and a fresh result. Results are only ever serialised, never
        changed, so sharing one is safe."""
        hit = self._rendered.get(key)
        if hit is not None and hit[0] is source:
            return hit[1]
        result = ok_result(payload())
        if key not in self._rendered and len(self._rendered) >= _RENDERED_SIZE:
            self._rendered.pop(next(iter(self._rendered)))  # the oldest entry
        self._rendered[key] = (source, result)  # holding `source` keeps the identity test sound
        return result

    def allowed_now(self, phase: Phase | None, caller: Caller, frozen: bool = False) -> list[str]:
        """Tools this caller may call on a task in `phase` (None: calls naming no task); while
        writes are refused (`frozen`), only the read-only ones."""
        key = (phase, caller.role, frozen)
        names = self._allowed.get(key)
        if names is None:
            names = self._allowed[key] = [
                t.name
                for t in self.table.values()
                if caller.at_least(t.role)
                and (phase in t.phases if phase is not None else (t.read_only or t.creates_task))
                and (t.read_only or not frozen)
            ]
        return list(names)

    async def writes_refused(self) -> bool:
        """Whether every mutating call is refused now: the freeze, controls that cannot be read
        (fail closed), or a ledger that failed its check."""
        if self.enforcer.ledger.refusal is not None:
            return True
        try:
            _, frozen = await self.enforcer.route_facts(None)
        except StoreError:
            return True
        return frozen

    async def call(
        self, name: str, arguments: Any, caller: Caller, trace_id: str | None = None
    ) -> CallToolResult:
        """Route one call and return the tool result (never raises for the caller's input)."""
        started = time.perf_counter()
        spec = self.table[name]
        ledger_seq_var.set(None)
        lease_token_var.set(None)
        phase_var.set(None)
        trace_id_var.set(trace_id)
        task: str | None = None
        task_exists = False
        bounded = False  # the arguments are within bounds (so cheap to hash)
        try:
            if not isinstance(arguments, dict):
                raise InvalidArgumentError(f"{name}: arguments must be an object")
            check_bounds(name, arguments)  # before validation, whose cost grows with them
            bounded = True
            try:
                args = spec.args.model_validate(arguments)
            except ValidationError as e:
                raise _validation_error(spec, e) from None
            task = getattr(args, "task", None)
            if not caller.at_least(spec.role):
                raise ForbiddenError(
                    f"{name} needs the {spec.role} role; {caller.actor} is {caller.role}",
                    hint="tools you may call: " + ", ".join(self.allowed_now(None, caller)),
                    details={"role": caller.role, "required": spec.role},
                )
            draft = getattr(args, "draft", None)
            if (
                task is None
                and draft is not None
                and (not spec.read_only or spec.phases != ALL_PHASES)
            ):
                task = await self.enforcer.modules.draft_task(draft)  # a draft's tools: its task
            if task is None and not spec.read_only and not spec.creates_task:
                raise InvalidArgumentError(f"{name} changes state and must name a task")
            phase: Phase | None = None
            if not spec.read_only or spec.phases != ALL_PHASES:
                phase, frozen = await self._facts(None if spec.creates_task else task, spec)
                task_exists = phase is not None
                refusal = self.enforcer.ledger.refusal
                if refusal is not None and not spec.read_only:
                    raise refusal  # before a handler stages bytes or runs the tests
                if frozen and not spec.read_only:
                    raise FrozenError(
                        "phasegate is frozen: no state may change",
                        hint="read-only tools still work; a supervisor lifts the freeze"
                        " (phasegate unfreeze)",
                    )
                if task is not None and phase is None and not spec.creates_task:
                    raise NotFoundError(
                        f"no task {task!r}",
                        hint="task_list shows tasks; task_start creates one",
                        details={"task": task},
                    )
                if phase is not None and phase not in spec.phases:
                    raise OutOfPhaseError(
                        f"{name} is not allowed in {phase.value}",
                        hint="tools allowed now: " + ", ".join(self.allowed_now(phase, caller)),
                        details={
                            "phase": phase.value,
                            "allowed_phases": sorted(p.value for p in spec.phases),
                            "tools_allowed_now": self.allowed_now(phase, caller),
                        },
                    )
            phase_var.set(None if phase is None else phase.value)
            ctx = CallContext(self.enforcer, caller, self, phase)
            out = await self.handlers[spec.handler_name](ctx, args)
            result = out if isinstance(out, CallToolResult) else ok_result(out)
            payload = result.structured_content or {}
            if isinstance(payload.get("phase"), str):
                phase_var.set(payload["phase"])
            if spec.creates_task and isinstance(payload.get("task"), str):
                task = payload["task"]  # a generated id: the new task's journal starts here
            if task is not None:
                task_exists = True
            # Handlers build their payloads from the result models' fields; the client checks them
            # against the advertised output schema (and the tests do, for every tool).
            code = None
        except PhasegateError as e:
            error: PhasegateError = e
            # NOT_FOUND may name the task or only something in it (an artifact): look.
            if task is not None and not isinstance(e, InvalidArgumentError):
                task_exists = task_exists or await self._exists(task)
            code = error.code
        except Exception:
            correlation = secrets.token_hex(8)
            logger.exception("internal error in %s (correlation id %s)", name, correlation)
            error = InternalError(
                f"internal error (correlation id {correlation})",
                hint="nothing was changed; retry, and report the correlation id if it persists",
                details={"correlation_id": correlation},
            )
            code = error.code
            if task is not None and not task_exists:  # a read fails before any facts were read
                task_exists = await self._exists(task)
        digest = _args_sha256(arguments if bounded else _outline(arguments))
        if code is not None:
            with tracer.start_as_current_span(
                "process.violation",
                attributes={"phasegate.error.code": code, "gen_ai.tool.name": name},
            ):
                await self._record_rejection(
                    caller, spec, digest, code, task if task_exists else None
                )
            result = error_result(error)
        elapsed = time.perf_counter() - started
        self._annotate(name, task if task_exists else None, code, elapsed)
        self.journal.write(
            task if task_exists else None,
            {
                "ts": rfc3339(self.enforcer.clock.now()),
                "actor": caller.actor,
                "instance": caller.instance,
                "tool": name,
                "args_sha256": digest,
                "outcome": "ok" if code is None else "refused",
                "code": code,
                "seq": ledger_seq_var.get(),
                "trace_id": trace_id,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
        return result

    def _annotate(self, name: str, task: str | None, code: str | None, elapsed: float) -> None:
        """Join the call to the ledger on the SDK's server span; record the duration metric."""
        span = trace.get_current_span()
        if span.is_recording():
            attrs: dict[str, str | int] = {}
            if task is not None:
                attrs["phasegate.task.id"] = task
            for key, var in (
                ("phasegate.ledger.seq", ledger_seq_var),
                ("phasegate.lease.token", lease_token_var),
            ):
                value = var.get()
                if value is not None:
                    attrs[key] = value
            phase = phase_var.get()
            if phase is not None:
                attrs["phasegate.phase"] = phase
            if code is not None:
                attrs["phasegate.error.code"] = code
            span.set_attributes(attrs)
        metric_attrs = {"mcp.method.name": "tools/call", "gen_ai.tool.name": name}
        if code is not None:
            metric_attrs["error.type"] = code
        _DURATION.record(elapsed, metric_attrs)

    async def _facts(self, task: str | None, spec: ToolSpec) -> tuple[Phase | None, bool]:
        """(the task's phase or None, frozen) from one snapshot. Fails closed: when they cannot
        be read, a mutating call is refused as FROZEN with what a supervisor must do (not
        `phasegate unfreeze`: with unreadable controls that fails too), a read-only one gets
        the store's error."""
        try:
            return await self.enforcer.route_facts(task)
        except StoreError as e:
            if not self._unreadable_logged:
                self._unreadable_logged = True
                logger.error("controls unreadable, refusing mutating calls: %s", e.message)
            if spec.read_only:
                raise
            raise WritesRefusedError(
                "controls",
                f"writes are refused: the controls (freeze, pause) cannot be read ({e.message})",
                hint="read-only tools still work; the database is damaged, so `phasegate"
                " unfreeze` cannot help: a supervisor runs `phasegate verify` and restores the"
                " state directory from a backup",
            ) from None

    async def _exists(self, task: str) -> bool:
        try:
            phase, _ = await self.enforcer.route_facts(task)
        except Exception:  # best effort: where the refusal is recorded, never a new failure
            return False
        return phase is not None

    async def _record_rejection(
        self, caller: Caller, spec: ToolSpec, digest: str, code: str, task: str | None
    ) -> None:
        try:
            await self.enforcer.record_refusal(
                caller,
                Record(
                    "tool.rejected",
                    {"task": task} if task else {},
                    {"tool": spec.name, "code": code, "args_sha256": digest},
                ),
            )
        except Exception:  # the refusal stands even when it cannot be ledgered
            logger.exception("could not ledger tool.rejected for %s", spec.name)
