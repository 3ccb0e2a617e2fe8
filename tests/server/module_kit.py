"""Helpers for the MCP tests of governed modules: a module directory with its own validator, and
registering it (the supervisor's `phasegate module add`, through the real enforcer) into a state
directory that a server may be serving at the same time.

The validator (`check.py`) passes when every ``*.md`` file starts with a ``# `` heading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modules_kit
from modules_kit import validator
from server_kit import INSTANCE

from enforcer.config import Config
from enforcer.model import Caller
from enforcer.policy_config import PolicyConfig
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

MODULE = "skills"
FIRST_DRAFT = f"{MODULE}-d1"
ADMIN = Caller("supervisor", role="admin", instance="cli-test")

# The module tree of the enforcer's module tests, without its shell script (the MCP tests
# count and diff these files).
FILES = {path: text for path, text in modules_kit.FILES.items() if path != "tools/run.sh"}


def make_module_dir(root: Path, files: dict[str, str] | None = None) -> Path:
    return modules_kit.make_module_dir(root, files or FILES)


async def register(state_dir: Path, root: Path, config: Config | None = None) -> dict[str, Any]:
    """Register MODULE from a fresh directory under `root`; installs v1 at root/live/MODULE."""
    source = make_module_dir(root / "module-src")
    async with open_runtime(state_dir, config=config or Config(), checkpoint_on_close=False) as rt:
        return await Enforcer(rt).modules.module_add(
            ADMIN, MODULE, source, root / "live" / MODULE, validator()
        )


async def draft_for(state_dir: Path, task: str, actor: str = "alice") -> str:
    """A draft of MODULE for `task`, made straight through the enforcer (whatever the task's
    phase: the phase rules are the router's) by the actor and instance the tests serve as."""
    caller = Caller(actor, instance=INSTANCE)
    async with open_runtime(state_dir, config=Config(), checkpoint_on_close=False) as rt:
        made = await Enforcer(rt).modules.draft_create(caller, task, MODULE)
    return str(made["draft"])


# A context line of an empty line is a single space, written out so no editor strips it.
SKILL_PATCH = "".join(
    [
        "--- a/SKILL.md\n",
        "+++ b/SKILL.md\n",
        "@@ -1,4 +1,4 @@\n",
        " # Review skill\n",
        " \n",
        "-Read the diff.\n",
        "+Read the whole diff.\n",
        " Name each risk.\n",
    ]
)


async def every_module_tool(session: Any, task: str, advance_to: Any) -> dict[str, Any]:
    """Call every governed-module tool once, successfully, over `session` (a task at IMPLEMENT
    moved on to MONITOR with `advance_to`); returns the promoted version's result."""
    from server_kit import ok

    from enforcer.phases import Phase

    async def call(name: str, **arguments: Any) -> dict[str, Any]:
        return ok(await session.call_tool(name, arguments))

    await call("module_list")
    await call("module_versions", module=MODULE)
    draft = (await call("draft_create", task=task, module=MODULE))["draft"]
    await call("draft_write", draft=draft, path="notes/new.md", content="# New\n")
    await call("draft_delete_file", draft=draft, path="prompts/review.md")
    await call("draft_apply_patch", draft=draft, patch=SKILL_PATCH)
    await call("draft_rebase", draft=draft)
    await call("draft_diff", draft=draft)
    await call("draft_show", draft=draft, path="SKILL.md")
    await call("policy_check", draft=draft)
    assert (await call("draft_validate", draft=draft))["state"] == "VALIDATED"
    spare = (await call("draft_create", task=task, module=MODULE))["draft"]
    await call("draft_discard", draft=spare, reason="not needed")
    await advance_to(session, task, Phase.PR)
    promoted = await call("draft_promote", draft=draft)
    await call("module_install", task=task, module=MODULE, version=promoted["version"])
    await advance_to(session, task, Phase.MONITOR)
    await call("module_rollback", task=task, module=MODULE, reason="back to v1")
    return promoted


def tree_files(root: Path) -> dict[str, str]:
    """Every file under `root` (through a symlinked root), relative path -> text."""
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


async def promoted_v2(state_dir: Path, root: Path, task: str = "T1") -> tuple[Path, dict, dict]:  # type: ignore[type-arg]
    """MODULE registered (v1 installed) and a v2 promoted by `task`, which is left at PR
    (moved there without gates: phases are the router's, this is only the setting).
    Returns (install path, v1's files, v2's files)."""
    from phasegate_testkit import NO_GATES

    await register(state_dir, root)
    install = root / "live" / MODULE
    v1 = tree_files(install)
    caller = Caller("alice", instance=INSTANCE)
    # A 40-file change is MEDIUM: promoted without a person here (these tests are about
    # installing it; tests/enforcer/policy/ are about approving).
    config = Config(gates=NO_GATES, policy=PolicyConfig(auto_approve=["LOW", "MEDIUM", "HIGH"]))
    async with open_runtime(state_dir, config=config, checkpoint_on_close=False) as rt:
        e = Enforcer(rt)
        await e.task_start(caller, "change the skills", task)
        while (await e.task_status(task)).task.phase.value != "IMPLEMENT":
            await e.phase_advance(caller, task)
        draft = (await e.modules.draft_create(caller, task, MODULE))["draft"]
        changed = {f"many/{i}.md": f"# Page {i}\n" + "text\n" * 200 for i in range(40)}
        for path, text in {"SKILL.md": "# Review skill v2\n", **changed}.items():
            await e.modules.draft_write(caller, draft, path, text)
        assert (await e.modules.draft_validate(caller, draft))["state"] == "VALIDATED"
        while (await e.task_status(task)).task.phase.value != "PR":
            await e.phase_advance(caller, task)
        await e.modules.draft_promote(caller, draft)
        await e.lease_release(caller, task)  # the server's agent takes the task from here
        await rt.ledger.checkpoint()
    v2 = {**v1, "SKILL.md": "# Review skill v2\n", **changed}
    return install, v1, v2
