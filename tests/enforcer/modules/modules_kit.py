"""Helpers for the governed-module tests: a small module tree with its own validator, an
enforcer over a real state directory with the module registered, and the paths to look at.

The validator (`check.py`, run by the real sandbox) passes when every ``*.md`` file of the
module starts with a ``# `` heading, and fails naming the first that does not — so a test makes
a failing change by writing a markdown file without a heading.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phasegate_testkit import NO_GATES, ROOT, enforcer_at

from enforcer.config import Config
from enforcer.model import Caller
from enforcer.service import Enforcer

ME = Caller("alice", instance="a1")
OTHER = Caller("bob", instance="b1")
ADMIN = ROOT

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
    "tools/run.sh": "#!/bin/sh\necho run\n",
}


def validator() -> list[str]:
    return [sys.executable, "check.py"]


def make_module_dir(root: Path, files: dict[str, str] | None = None) -> Path:
    for rel, text in (files or FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    script = root / "tools" / "run.sh"
    if script.exists():
        script.chmod(0o755)
    return root


@dataclass
class World:
    e: Enforcer
    state: Path
    source: Path
    install: Path

    def installed(self) -> dict[str, str]:
        """What the install path holds now: relative path -> text."""
        return {
            str(p.relative_to(self.install)): p.read_text()
            for p in sorted(self.install.rglob("*"))
            if p.is_file()
        }


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, config: Config | None = None, module: str = "skills", **register: Any
) -> AsyncIterator[World]:
    """An enforcer over tmp_path/state with `module` registered (v1 installed) and task T1
    created by ME (with NO_GATES, so a test moves it to any phase directly)."""
    state = tmp_path / "state"
    source = make_module_dir(tmp_path / "src")
    install = tmp_path / "live" / module
    async with enforcer_at(state, config or Config(gates=NO_GATES)) as e:
        await e.modules.module_add(
            ADMIN, module, source, install, register.pop("validator", validator()), **register
        )
        await e.task_start(ME, "change the skills", "T1")
        yield World(e, state, source, install)


async def at_phase(e: Enforcer, task: str, phase: str) -> None:
    """Move `task` forward to `phase` (the world's config has no gates)."""
    while (await e.task_status(task)).task.phase.value != phase:
        await e.phase_advance(ME, task)


async def promote_change(
    w: World, files: dict[str, str] | None = None, task: str = "T1"
) -> dict[str, Any]:
    """A draft of the module with `files` written, validated, promoted; the task ends at PR."""
    e = w.e
    await at_phase(e, task, "IMPLEMENT")
    draft = (await e.modules.draft_create(ME, task, "skills"))["draft"]
    for path, text in (files or {"SKILL.md": "# Review skill v2\n"}).items():
        await e.modules.draft_write(ME, draft, path, text)
    validated = await e.modules.draft_validate(ME, draft)
    assert validated["state"] == "VALIDATED", validated["report"]
    await at_phase(e, task, "PR")
    return await e.modules.draft_promote(ME, draft)


def blob_path(state: Path, sha: str) -> Path:
    return state / "blobs" / "sha256" / sha[:2] / sha
