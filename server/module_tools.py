"""Handlers of the governed-module tools: each adapts one `Enforcer.modules` call to the
tool's result. No checks here — the router has done them (a draft's task and its phase among
them), and the enforcer does the rest inside its transactions."""

from __future__ import annotations

from typing import Any

from .context import CallContext
from .module_catalogue import (
    DraftArgs,
    DraftCreateArgs,
    DraftDiscardArgs,
    DraftPatchArgs,
    DraftPathArgs,
    DraftShowArgs,
    DraftWriteArgs,
    InstallArgs,
    ModuleArgs,
    RollbackArgs,
)
from .tool_models import Args

__all__ = ["MODULE_HANDLERS"]


async def module_list(ctx: CallContext, a: Args) -> dict[str, Any]:
    return {"modules": await ctx.enforcer.modules.module_list()}


async def module_versions(ctx: CallContext, a: ModuleArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.module_versions(a.module)


async def draft_create(ctx: CallContext, a: DraftCreateArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_create(ctx.caller, a.task, a.module, a.from_version)


async def draft_write(ctx: CallContext, a: DraftWriteArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_write(ctx.caller, a.draft, a.path, a.content)


async def draft_delete_file(ctx: CallContext, a: DraftPathArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_delete_file(ctx.caller, a.draft, a.path)


async def draft_apply_patch(ctx: CallContext, a: DraftPatchArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_apply_patch(ctx.caller, a.draft, a.patch)


async def draft_rebase(ctx: CallContext, a: DraftArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_rebase(ctx.caller, a.draft)


async def draft_diff(ctx: CallContext, a: DraftArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_diff(a.draft)


async def draft_show(ctx: CallContext, a: DraftShowArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_show(a.draft, a.path)


async def draft_validate(ctx: CallContext, a: DraftArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_validate(ctx.caller, a.draft)


async def draft_discard(ctx: CallContext, a: DraftDiscardArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_discard(ctx.caller, a.draft, a.reason)


async def policy_check(ctx: CallContext, a: DraftArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.policy_check(a.draft, ctx.caller)


async def draft_promote(ctx: CallContext, a: DraftArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.draft_promote(ctx.caller, a.draft)


async def module_install(ctx: CallContext, a: InstallArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.module_install(ctx.caller, a.module, a.version, a.task)


async def module_rollback(ctx: CallContext, a: RollbackArgs) -> dict[str, Any]:
    return await ctx.enforcer.modules.module_rollback(
        ctx.caller, a.module, a.reason, a.to_version, a.task
    )


MODULE_HANDLERS = {
    f.__name__: f
    for f in (
        module_list,
        module_versions,
        draft_create,
        draft_write,
        draft_delete_file,
        draft_apply_patch,
        draft_rebase,
        draft_diff,
        draft_show,
        draft_validate,
        draft_discard,
        policy_check,
        draft_promote,
        module_install,
        module_rollback,
    )
}
