"""Helpers for the MCP tests of governed modules: a module directory with its own validator, and
registering it (the supervisor's `phasegate module add`, through the real enforcer) into a state
directory that a server may be serving at the same time.

The validator (`check.py`) passes when every ``*.md`` file starts with a ``# `` heading.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from server_kit import INSTANCE

from enforcer.config import Config
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

MODULE = "skills"
FIRST_DRAFT = f"{MODULE}-d1"
ADMIN = Caller("supervisor", role="admin", instance="cli-test")

CHECK_PY = """\
import pathlib, sys
bad = [p for p in sorted(pathlib.Path('.').rglob('*.md')) if not p.read_text().startswith('# ')]
if bad:
    print('no heading:', bad[0])
    sys.exit(1)
print('ok', len(list(pathlib.Path('.').rglob('*.md'))), 'markdown files')
"""

FILES = {
    "check.py": CHECK_PY,
    "SKILL.md": "# Review skill\n\nRead the diff.\nName each risk.\n",
    "prompts/review.md": "# Review prompt\n\nBe brief.\n",
}


def validator() -> list[str]:
    return [sys.executable, "check.py"]


def make_module_dir(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


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
