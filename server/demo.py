"""`phasegate demo`: one task driven from STRATEGIZE to DONE through the enforcer, with a
tiny sample project whose own test the server runs in VERIFY. It shows a newcomer what the
gates want, leaves a verifiable state directory behind, and gives CI a state to check."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enforcer.config import Config, VerifyConfig
from enforcer.errors import PhasegateError
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

from .demo_modules import DemoModule

__all__ = ["ARTIFACTS", "run_demo"]

_DIFF = """\
diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""

_RUBRIC = {
    "dimensions": {
        d: {"score": 4, "notes": "checked in the demo"}
        for d in ("readability", "maintainability", "performance", "security", "governance")
    }
}

# The artifact each phase's default gate needs, with content that passes its check.
ARTIFACTS: dict[str, tuple[str, str]] = {
    "STRATEGIZE": ("strategy.md", "# Problem\nadd() subtracts.\n# Objectives\n- add adds\n"),
    "SPEC": ("spec.md", "# Acceptance Criteria\n- add(2, 3) == 5\n"),
    "PLAN": ("plan.md", "1. fix the operator\n2. run the test\n"),
    "THINK": ("edge_cases.md", "- negative numbers\n"),
    "IMPLEMENT": ("git_diff.patch", _DIFF),
    "REVIEW": ("review_rubric.json", json.dumps(_RUBRIC)),
    "PR": ("pr_summary.md", "# Summary\nfix add\n# Risks\nnone\n# Rollback\nrevert\n"),
    "MONITOR": (
        "smoke_test_results.json",
        json.dumps({"checks": [{"name": "add", "passed": True}]}),
    ),
}


def _sample_project(root: Path) -> Path:
    project = root / "demo-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (project / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    return project


Say = Callable[[dict[str, Any]], None]


def _print(step: dict[str, Any]) -> None:
    print(step["text"])


async def run_demo(state_dir: Path, say: Say = _print) -> str:
    """Drive one task to DONE; returns its id. Each step is told to `say` as a dict with a
    `step` kind, its facts and a readable `text`."""
    project = _sample_project(state_dir)
    config = Config(
        verify=VerifyConfig(
            command=[
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--junitxml={junit}",
            ],
            cwd=str(project),
        )
    )
    me = Caller("demo-agent", instance="demo")
    async with open_runtime(state_dir, config=config) as rt:
        e = Enforcer(rt)
        task = (await e.task_start(me, "Demo: make add() add")).task.task
        say({"step": "started", "task": task, "text": f"task {task} at STRATEGIZE"})
        module = DemoModule(e, me, state_dir, say)
        await module.register()
        try:
            await e.phase_advance(me, task, "PLAN")
        except PhasegateError as refused:
            say(
                {
                    "step": "refused",
                    "code": refused.code,
                    "text": f"  skip to PLAN refused: {refused.code} — {refused.hint}",
                }
            )
        while True:
            status = await e.task_status(task)
            phase = status.task.phase.value
            if phase == "DONE":
                break
            await module.at(phase, task)  # the module's draft, promotion, install, rollback
            if phase == "VERIFY":
                run = await e.verify_run(me, task)
                passed, failed = run["results"]["passed"], run["results"]["failed"]
                say(
                    {
                        "step": "verified",
                        "passed": passed,
                        "failed": failed,
                        "text": f"  verify_run: {passed} passed, {failed} failed",
                    }
                )
            else:
                name, content = ARTIFACTS[phase]
                rec = await e.evidence_put(me, task, name, content)
                say(
                    {
                        "step": "recorded",
                        "name": name,
                        "sha256": rec.sha256,
                        "valid": rec.valid,
                        "text": f"  {name} recorded ({rec.sha256[:12]}, valid={rec.valid})",
                    }
                )
            moved = await e.phase_advance(me, task)
            to = moved.task.phase.value
            say({"step": "advanced", "from": phase, "to": to, "text": f"{phase} -> {to}"})
        await rt.ledger.checkpoint()
    return task
