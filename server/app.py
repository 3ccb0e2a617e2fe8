"""Building the MCP server: lifespan, the router as middleware, the tool catalogue, resources.

The router runs as SDK middleware, before the SDK validates arguments, so a bad argument gets
phasegate's structured INVALID_ARGUMENT body rather than a bare validation message; the tool
functions registered with the SDK (for `tools/list`: schemas, annotations, descriptions) route
through the same router when called directly, so there is no second path.

    server = build_server(ServeOptions(state_dir=Path("state")))
    server.run()  # stdio
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from opentelemetry import trace

from enforcer.clock import Clock
from enforcer.config import Config, config_path, load_config
from enforcer.errors import NotFoundError, PhasegateError, StorageFullError, WritesRefusedError
from enforcer.model import Caller
from enforcer.process.leases import HOST
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

from .auth import ConfigTokenVerifier
from .catalogue import ToolSpec, tool_table
from .journal import Journal
from .router import Router, error_result
from .tool_models import input_schema
from .tools import HANDLERS

__all__ = ["AppState", "ServeOptions", "build_server"]

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
phasegate governs your work on a task: STRATEGIZE → SPEC → PLAN → THINK → IMPLEMENT → VERIFY →
REVIEW → PR → MONITOR → DONE, one step at a time; skips are refused.
1. task_start(title) creates a task and gives you its lease; task_status(task) says what the
   current phase's gate needs, which tools are allowed now, and your lease.
2. In each phase write the required artifact with evidence_put(task, name, content), then
   phase_advance(task). A refusal is a result with error.code and error.hint: do what the hint says.
3. IMPLEMENT needs git_diff.patch (your unified diff); in VERIFY call verify_run(task): the server
   runs the tests itself, results you write do not count.
4. To go back, phase_backtrack(task, to, reason); later phases then need fresh evidence.
5. prompt_attest(task, prompt) once per phase with the instructions you work under.
6. Release your lease (lease_release) to hand a task to another agent (e.g. a reviewer). Pass
   your lease's fencing_token on writes to have them refused if the lease changed hands since.
7. Governed modules (module_list) change only through drafts: in IMPLEMENT draft_create(task,
   module), then draft_write / draft_delete_file / draft_apply_patch (paths relative to the
   module), draft_diff, draft_validate (the module's own validator, sandboxed; any later edit
   needs a new run); in PR draft_promote(draft) makes a signed version, module_install(task,
   module, version) installs it; in MONITOR module_rollback(task, module, reason) goes back.
   A draft behind the newest version needs draft_rebase(draft) before it can be promoted."""

_INSTANCE = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # fullmatch: "$" admits a final newline


@dataclass
class ServeOptions:
    state_dir: Path
    config_path: Path | None = None
    config: Config | None = None
    actor: str | None = None
    clock: Clock | None = None
    http: tuple[str, int] | None = None  # (host, port) when serving streamable HTTP
    store_url: str | None = None  # PostgreSQL; None: [store] url, else SQLite in state_dir
    instance: str = field(default_factory=lambda: f"{HOST}-{os.getpid()}")
    # The state while the server runs (one item, from the lifespan): the web page served in
    # the same process reads the same enforcer through it.
    running: list[AppState] = field(default_factory=list, repr=False)


@dataclass
class AppState:
    enforcer: Enforcer
    router: Router
    config: Config
    options: ServeOptions
    _callers: dict[str, Caller] = field(default_factory=dict, repr=False)

    def caller(self, ctx: ServerRequestContext[Any, Any] | None) -> Caller:
        """Who is calling: the bearer token's actor over HTTP, else --actor / the client name."""
        token = get_access_token()
        if token is not None:
            role = token.scopes[0] if token.scopes else "viewer"
            headers = getattr(ctx.request, "headers", None) if ctx is not None else None
            instance = (headers or {}).get("x-phasegate-instance", "http")
            if not _INSTANCE.fullmatch(instance):
                instance = "http"
            return Caller(token.client_id, role, instance)  # type: ignore[arg-type]
        actor = self.options.actor
        if actor is None and ctx is not None:
            params = ctx.session.client_params
            name = params.client_info.name if params is not None else None
            actor = re.sub(r"[^A-Za-z0-9._-]", "-", name or "")[:64] or None
        actor = actor or "agent"
        caller = self._callers.get(actor)  # the same few actors on every call: build each once
        if caller is None:
            configured = self.config.actors.get(actor)
            role = configured.role if configured is not None else "operator"
            caller = Caller(actor, role, self.options.instance, os.getpid(), HOST)
            if len(self._callers) < 64:
                self._callers[actor] = caller
        return caller


def _state(ctx: Context) -> AppState:
    return cast(AppState, ctx.request_context.lifespan_context)


def _trace_id() -> str | None:
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


class RouterMiddleware:
    """Routes every `tools/call` for a catalogue tool and answers one for a tool that does not
    exist with the error contract (NOT_FOUND, the tools listed in the hint); everything else,
    a tool added outside the catalogue included, passes through."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.server: MCPServer[AppState] | None = None  # set once the server is built
        self._all: list[str] | None = None  # every tool's name, read at the first unknown one

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method != "tools/call" or not ctx.params:
            return await call_next(ctx)
        name = ctx.params.get("name")
        if name not in self.names:
            if not isinstance(name, str) or await self._exists(name):
                return await call_next(ctx)  # the SDK answers a malformed call, or serves it
            shown = name if len(name) <= 64 else name[:64] + "…"
            return error_result(
                NotFoundError(
                    f"no tool {shown!r}",
                    hint="tools: " + ", ".join(self._all or sorted(self.names)),
                    details={"tool": shown},
                )
            )
        state: AppState = ctx.lifespan_context
        arguments = ctx.params.get("arguments")
        return await state.router.call(
            str(name), {} if arguments is None else arguments, state.caller(ctx), _trace_id()
        )

    async def _exists(self, name: str) -> bool:
        if self._all is None and self.server is not None:
            # Tools are all added before serving starts; list them once.
            self._all = [tool.name for tool in await self.server.list_tools()]
        return self._all is not None and name in self._all


def _tool_function(spec: ToolSpec) -> Any:
    """A function whose signature is the tool's argument model (for the SDK's schemas)."""

    async def call(ctx: Context, **kwargs: Any) -> CallToolResult:
        state = _state(ctx)
        arguments = {k: v for k, v in kwargs.items() if v is not None}
        return await state.router.call(
            spec.name, arguments, state.caller(ctx.request_context), _trace_id()
        )

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    for fname, f in spec.args.model_fields.items():
        default = inspect.Parameter.empty if f.is_required() else f.default
        annotation = f.annotation
        if f.metadata:
            annotation = Annotated[(annotation, *f.metadata)]  # type: ignore[assignment]
        params.append(
            inspect.Parameter(
                fname, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
            )
        )
    returns = Annotated[CallToolResult, spec.result]
    call.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    call.__name__ = spec.name
    call.__doc__ = spec.description
    return call


def build_server(options: ServeOptions) -> MCPServer[AppState]:
    config = options.config or load_config(options.config_path, state_dir=options.state_dir)
    table = tool_table(dict(config.tools))

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        # The file the policy re-reads while serving: the one named, else the one looked up.
        watched = options.config_path
        if options.config is None:
            watched = config_path(options.config_path, options.state_dir)
        async with open_runtime(
            options.state_dir,
            config=config,
            clock=options.clock,
            store_url=options.store_url,
            config_file=watched,
        ) as rt:
            # Before serving: compare the ledger with the newest signed checkpoint (a fault is
            # logged in one line and refuses every write; reads go on), and sign what a
            # previous process left unsigned.
            try:
                await rt.ledger.checkpoint()
            except WritesRefusedError:
                pass  # logged by the ledger; reads go on
            except StorageFullError as e:  # writes will say so too; the next one signs
                logger.error("no checkpoint at start: %s", e.message)
            enforcer = Enforcer(rt)
            await _reconcile_modules(enforcer, options)  # a crash mid-install left a path
            # What a server stopped mid-way left: bytes not yet in their files, stale copies.
            await enforcer.flush_evidence(everything=True)
            refreshed = await enforcer.refresh_evidence_copies()
            if refreshed:
                logger.info("refreshed %d readable evidence copies", refreshed)
            journal = Journal(rt.paths.evidence)
            router = Router(enforcer, table, HANDLERS, journal)
            ticker = asyncio.create_task(_checkpoint_ticker(enforcer))
            state = AppState(enforcer, router, config, options)
            options.running.append(state)
            try:
                yield state
            finally:
                options.running.remove(state)
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
                journal.close()
                await enforcer.flush_refusals(everything=True)  # before the final checkpoint

    router_middleware = RouterMiddleware(frozenset(table))
    server: MCPServer[AppState] = MCPServer(
        name="phasegate",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        middleware=[router_middleware],
        **_auth_kwargs(config, options),
    )
    for spec in table.values():
        server.add_tool(
            _tool_function(spec),
            name=spec.name,
            description=spec.description,
            annotations=ToolAnnotations(
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive if not spec.read_only else None,
                idempotent_hint=spec.idempotent,
                open_world_hint=False,
            ),
        )
        # The SDK derives the input schema from the function's signature, with a title per
        # field; advertise the catalogue's lean one instead (the SDK's manager keeps no other).
        registered = server._tool_manager.get_tool(spec.name)
        if registered is not None:
            registered.parameters = input_schema(spec.args)
    _add_resources(server)
    router_middleware.server = server
    return server


async def _reconcile_modules(enforcer: Enforcer, options: ServeOptions) -> None:
    """Point every module's install path at its active version (a crash mid-install may have
    left it at the other one); a module that cannot be repaired is logged, not fatal."""
    server = Caller("phasegate", "admin", options.instance, os.getpid(), HOST)
    try:
        for line in await enforcer.modules.reconcile(server):
            if line.get("repaired") or not line.get("consistent"):
                logger.warning("module %s at start: %s", line["module"], line)
    except PhasegateError as e:
        logger.error("modules could not be reconciled at start: %s", e.message)


async def _checkpoint_ticker(enforcer: Enforcer) -> None:
    """Write the counts of coalesced refusals that are due, and sign a checkpoint when the
    policy's interval passes with unsigned entries."""
    ledger = enforcer.config.ledger
    interval = max(1.0, min(ledger.checkpoint_interval_s, ledger.refusal_window_s or 60) / 2)
    while True:
        await asyncio.sleep(interval)
        try:
            await enforcer.flush_refusals()
            await enforcer.flush_evidence(adopt=True)  # bytes whose writer went away
            await enforcer.ledger.maybe_checkpoint()
        except WritesRefusedError:
            return  # logged once by the ledger; nothing will be signed again
        except OSError as e:
            logger.error("periodic checkpoint failed (tried again at the next tick): %s", e)
        except PhasegateError as e:  # a full disk, a store error: one line, tried again
            logger.error("periodic work failed (tried again at the next tick): %s", e.message)
        except Exception:
            logger.exception("periodic checkpoint failed")


def _add_resources(server: MCPServer[AppState]) -> None:
    import json
    from collections.abc import Iterator

    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

    from enforcer.errors import PhasegateError

    @contextlib.contextmanager
    def refusals() -> Iterator[None]:
        """An unknown task or a bad name is an anticipated resource error, not a crash."""
        try:
            yield
        except NotFoundError as e:
            raise ResourceNotFoundError(e.message) from None
        except PhasegateError as e:
            if e.code == "INTERNAL":
                raise
            raise ResourceError(f"{e.code}: {e.message}") from None

    @server.resource(
        "phasegate://tasks/{task}/status",
        mime_type="application/json",
        description="task_status as a resource",
    )
    async def task_status_resource(task: str, ctx: Context) -> str:
        state = _state(ctx)
        with refusals():
            return json.dumps((await state.enforcer.task_status(task)).as_dict())

    @server.resource(
        "phasegate://tasks/{task}/evidence/{phase}/{name}", description="one evidence artifact"
    )
    async def evidence_resource(task: str, phase: str, name: str, ctx: Context) -> str:
        state = _state(ctx)
        with refusals():
            _, data = await state.enforcer.evidence_read(task, phase, name)
        return data.decode("utf-8", "replace")

    @server.resource(
        "phasegate://ledger/tail/{limit}",
        mime_type="application/json",
        description="the newest `limit` ledger entries (at most 1000)",
    )
    async def ledger_tail_resource(limit: str, ctx: Context) -> str:
        state = _state(ctx)
        count = int(limit) if limit.isdigit() else 50
        return json.dumps([e.as_dict() for e in await state.enforcer.ledger.tail(count)])


def _auth_kwargs(config: Config, options: ServeOptions) -> dict[str, Any]:
    """Bearer-token auth when serving HTTP; stdio needs none (the client started us)."""
    if options.http is None:
        return {}
    host, port = options.http
    base = f"http://{host}:{port}"
    # No resource_server_url: the tokens are static, there is no authorization server to point
    # a client at (server/http.py answers unauthenticated requests with a plain challenge).
    return {
        "token_verifier": ConfigTokenVerifier(config),
        "auth": AuthSettings.model_validate({"issuer_url": base, "resource_server_url": None}),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("phasegate")
    except PackageNotFoundError:
        return "0.0.0"
