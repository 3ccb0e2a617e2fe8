"""The governed-module part of `phasegate demo`: a small prompts module registered as v1, then,
as the demo task passes IMPLEMENT, PR and MONITOR: a draft with two changed files, its diff,
its sandboxed validation, promotion to a signed v2 (v3… on later runs), install, rollback.

    demo = DemoModule(enforcer, me, state_dir, say)
    await demo.register()
    await demo.at("IMPLEMENT", task)     # then at "PR" and at "MONITOR"
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enforcer.model import Caller
from enforcer.service import Enforcer

__all__ = ["MODULE", "DemoModule"]

MODULE = "demo-prompts"
_CHECK = """\
import pathlib, sys
bad = [p for p in sorted(pathlib.Path('.').rglob('*.md')) if not p.read_text().startswith('# ')]
print('no heading: %s' % bad[0] if bad else 'every prompt has a heading')
sys.exit(1 if bad else 0)
"""
_FILES = {
    "check.py": _CHECK,
    "review.md": "# Review\n\nRead the diff. Name each risk.\n",
    "summary.md": "# Summary\n\nSay what changed.\n",
}
_ADMIN = Caller("demo-supervisor", role="admin", instance="demo")


class DemoModule:
    def __init__(
        self, e: Enforcer, me: Caller, state_dir: Path, say: Callable[[dict[str, Any]], None]
    ) -> None:
        self.e, self.me, self.state_dir, self.say = e, me, state_dir, say
        self.draft: str | None = None
        self.version: int | None = None

    async def register(self) -> None:
        """Register the module once per state directory (a later demo run reuses it)."""
        if any(m["module"] == MODULE for m in await self.e.modules.module_list()):
            return
        source = self.state_dir / "demo-module"
        for name, text in _FILES.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text(text)
        out = await self.e.modules.module_add(
            _ADMIN,
            MODULE,
            source,
            self.state_dir / "demo-live" / MODULE,
            [sys.executable, "check.py"],
            60,
        )
        self.say(
            {
                "step": "module_registered",
                "module": MODULE,
                "bundle_sha256": out["bundle_sha256"],
                "text": f"module {MODULE} v1 registered and installed at {out['install_path']}",
            }
        )

    async def at(self, phase: str, task: str) -> None:
        m = self.e.modules
        if phase == "IMPLEMENT":
            newest = (await m.module_versions(MODULE))["newest"]
            draft = (await m.draft_create(self.me, task, MODULE, newest))["draft"]
            review = f"# Review\n\nRead the whole diff (from v{newest + 1} on).\n"
            await m.draft_write(self.me, draft, "review.md", review)
            await m.draft_write(self.me, draft, "checklist.md", "# Checklist\n\n- tests pass\n")
            diff = await m.draft_diff(draft)
            self._tell(
                "drafted",
                draft,
                f"  draft {draft}: {diff['files']} files,"
                f" +{diff['added']} -{diff['removed']} (diff {diff['diff_sha256'][:12]})",
            )
            result = await m.draft_validate(self.me, draft)
            report = result["report"]
            self._tell(
                "validated",
                draft,
                f"  draft_validate: {result['state']} (exit"
                f" {report['exit_code']}, isolation {report.get('isolation')})",
            )
            self.draft = draft
        elif phase == "PR" and self.draft is not None:
            promoted = await m.draft_promote(self.me, self.draft)
            self.version = int(promoted["version"])
            self._tell(
                "promoted",
                self.draft,
                f"  draft_promote: v{self.version}, bundle"
                f" {promoted['bundle_sha256'][:12]}, attestation signed",
            )
            await m.module_install(self.me, MODULE, self.version, task)
            self._tell("installed", self.draft, f"  module_install: v{self.version} installed")
        elif phase == "MONITOR" and self.version is not None:
            back = await m.module_rollback(self.me, MODULE, "demo: roll back", None, task)
            self._tell(
                "rolled_back",
                self.draft or "",
                f"  module_rollback: v{back['version']}"
                f" active again; v{self.version} stays installable",
            )

    def _tell(self, step: str, draft: str, text: str) -> None:
        self.say({"step": step, "module": MODULE, "draft": draft, "text": text})
