"""The governed-module tools (DESIGN.md, MCP tools): names, arguments, results, roles, phases.

The loop they tell an agent: in IMPLEMENT `draft_create`, change files (`draft_write`,
`draft_delete_file`, `draft_apply_patch`), look (`draft_diff`, `draft_show`), then
`draft_validate` (IMPLEMENT or VERIFY); in PR `draft_promote` and `module_install`; in MONITOR
`module_rollback` if it misbehaves. Tools on a draft take their task from the draft. Every
description is short on purpose: the whole `tools/list` stays within 20 KB.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictInt, StrictStr

from enforcer.phases import Phase

from .tool_models import Args, Result, ToolSpec, spec

__all__ = ["MODULE_TOOLS"]

# Bounds only: the enforcer checks every id and path itself (names.py), naming the problem.
Draft = Annotated[StrictStr, Field(max_length=80)]
Module = Annotated[StrictStr, Field(max_length=64)]
Task = Annotated[StrictStr, Field(max_length=64)]
Path = Annotated[StrictStr, Field(max_length=1024)]
Version = Annotated[StrictInt, Field(ge=1)]
MiB2 = 2 * 1024 * 1024


class ModuleArgs(Args):
    module: Module


class DraftArgs(Args):
    draft: Draft


class DraftCreateArgs(Args):
    task: Task
    module: Module
    from_version: Version | None = None


class DraftWriteArgs(Args):
    draft: Draft
    path: Path
    content: Annotated[StrictStr, Field(max_length=MiB2)]


class DraftPathArgs(Args):
    draft: Draft
    path: Path


class DraftShowArgs(Args):
    draft: Draft
    path: Path | None = None


class DraftPatchArgs(Args):
    draft: Draft
    patch: Annotated[StrictStr, Field(max_length=MiB2)]


class DraftDiscardArgs(Args):
    draft: Draft
    reason: Annotated[StrictStr, Field(max_length=2000)]


class InstallArgs(Args):
    task: Task
    module: Module
    version: Version


class RollbackArgs(Args):
    task: Task
    module: Module
    reason: Annotated[StrictStr, Field(max_length=2000)]
    to_version: Version | None = None


class ModuleListResult(Result):
    modules: list[dict[str, Any]]


class VersionsResult(Result):
    module: str
    active: int | None
    versions: list[dict[str, Any]]


class DraftResult(Result):
    draft: str
    state: str


class DiffResult(Result):
    diff: str
    diff_sha256: str
    files: int
    added: int
    removed: int


class ValidateResult(Result):
    state: str
    report: dict[str, Any]


class PolicyResult(Result):
    decision: str


class PromoteResult(Result):
    version: int
    bundle_sha256: str


class PointerResult(Result):
    module: str
    version: int


_IMPLEMENT = frozenset({Phase.IMPLEMENT})
_VALIDATE = frozenset({Phase.IMPLEMENT, Phase.VERIFY})
_DISCARD = frozenset({Phase.IMPLEMENT, Phase.VERIFY, Phase.REVIEW})

MODULE_TOOLS: tuple[ToolSpec, ...] = (
    spec(
        "module_list",
        "Governed modules: install path, active and newest version.",
        Args,
        ModuleListResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    spec(
        "module_versions",
        "A module's signed versions and active pointer.",
        ModuleArgs,
        VersionsResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    spec(
        "draft_create",
        "IMPLEMENT: draft a change to a module (from its active version). Then edit,"
        " draft_validate, and in PR draft_promote and module_install.",
        DraftCreateArgs,
        DraftResult,
        "operator",
        _IMPLEMENT,
    ),
    spec(
        "draft_write",
        "Write a draft's file; any edit undoes a validation.",
        DraftWriteArgs,
        DraftResult,
        "operator",
        _IMPLEMENT,
    ),
    spec(
        "draft_delete_file",
        "Delete a draft's file.",
        DraftPathArgs,
        DraftResult,
        "operator",
        _IMPLEMENT,
    ),
    spec(
        "draft_apply_patch",
        "Apply a unified diff to a draft, all or nothing (CONFLICT if context differs).",
        DraftPatchArgs,
        DraftResult,
        "operator",
        _IMPLEMENT,
    ),
    spec(
        "draft_rebase",
        "Replay a draft onto the module's newest version.",
        DraftArgs,
        DraftResult,
        "operator",
        _IMPLEMENT,
    ),
    spec(
        "draft_diff",
        "A draft's unified diff against its base, with stats.",
        DraftArgs,
        DiffResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    spec(
        "draft_show",
        "A draft's state and validation report; with path, that file.",
        DraftShowArgs,
        DraftResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    spec(
        "draft_validate",
        "Run the module's validator on the draft in a sandbox.",
        DraftArgs,
        ValidateResult,
        "operator",
        _VALIDATE,
    ),
    spec(
        "draft_discard",
        "Discard a draft (kept for audit).",
        DraftDiscardArgs,
        DraftResult,
        "operator",
        _DISCARD,
        destructive=True,
    ),
    spec(
        "policy_check",
        "What the policy would decide on promoting a draft now, and why.",
        DraftArgs,
        PolicyResult,
        "viewer",
        read_only=True,
        idempotent=True,
    ),
    spec(
        "draft_promote",
        "PR: make a VALIDATED draft the module's next signed version.",
        DraftArgs,
        PromoteResult,
        "operator",
        frozenset({Phase.PR}),
    ),
    spec(
        "module_install",
        "Install a signed version (signature and digests checked first).",
        InstallArgs,
        PointerResult,
        "operator",
        frozenset({Phase.PR, Phase.MONITOR}),
    ),
    spec(
        "module_rollback",
        "MONITOR: point the module back to an earlier version (default: the previous).",
        RollbackArgs,
        PointerResult,
        "operator",
        frozenset({Phase.MONITOR}),
        destructive=True,
    ),
)
