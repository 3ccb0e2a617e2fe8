"""Shared helpers for the enforcer tests: valid and invalid artifacts, a tiny sample project for
the verify command, opening an Enforcer over a real state directory, and reading the ledger.

Everything here uses the real parts (SQLite in a temporary directory, real subprocesses); nothing
of phasegate is replaced.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from enforcer.clock import Clock, ManualClock
from enforcer.config import Config, GateConfig, VerifyConfig
from enforcer.ledger.entries import LedgerEntry
from enforcer.model import Caller
from enforcer.phases import ORDER, Phase
from enforcer.process.gates import RESERVED_SERVER_ARTIFACTS
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

ALICE = Caller("alice", instance="a1")
BOB = Caller("bob", instance="b1")
ROOT = Caller("root", role="admin", instance="cli")

DIFF = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""

DIFF_2 = """diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,3 @@
 def add(a, b):
-    return a - b
+    # fixed
+    return a + b
"""

DIMENSIONS = ("readability", "maintainability", "performance", "security", "governance")


def rubric(score: int = 4, **overrides: int) -> str:
    dims = {d: {"score": overrides.get(d, score), "notes": "ok"} for d in DIMENSIONS}
    return json.dumps({"dimensions": dims})


SMOKE_OK = json.dumps({"checks": [{"name": "health", "passed": True}]})
SMOKE_FAIL = json.dumps(
    {"checks": [{"name": "health", "passed": True}, {"name": "latency", "passed": False}]}
)

# The artifact each phase's default gate needs, with content that passes its check.
VALID: dict[Phase, tuple[str, str]] = {
    Phase.STRATEGIZE: ("strategy.md", "# Problem\nslow parser\n\n# Objectives\n- faster\n"),
    Phase.SPEC: ("spec.md", "# Spec\n\n## Acceptance Criteria\n- parses 1 MB in 10 ms\n"),
    Phase.PLAN: ("plan.md", "# Plan\n1. profile\n2. fix the hot loop\n"),
    Phase.THINK: ("edge_cases.md", "- empty input\n- unicode\n"),
    Phase.IMPLEMENT: ("git_diff.patch", DIFF),
    Phase.REVIEW: ("review_rubric.json", rubric()),
    Phase.PR: ("pr_summary.md", "# Summary\nfix\n# Risks\nnone\n# Rollback\nrevert\n"),
    Phase.MONITOR: ("smoke_test_results.json", SMOKE_OK),
}

# Content that the same artifact's check refuses.
INVALID: dict[str, str] = {
    "strategy.md": "# Problem\nonly the problem\n",
    "spec.md": "# Acceptance Criteria\nnothing listed\n",
    "plan.md": "- one step only\n",
    "edge_cases.md": "none that I can think of\n",
    "git_diff.patch": "this is not a diff\n",
    "review_rubric.json": rubric(4, security=2),
    "pr_summary.md": "# Summary\nfix\n",
    "smoke_test_results.json": SMOKE_FAIL,
}

# Every gate empty: a task moves straight to DONE (for tests about the phase graph only).
NO_GATES = {p.value: GateConfig(artifacts=[]) for p in ORDER if p is not Phase.DONE}

SAMPLE_TEST = """def test_add():
    assert 1 + 1 == 2
"""


def write_sample_project(root: Path, test_body: str = SAMPLE_TEST) -> Path:
    """A tiny project with its own passing test (and its own pytest rootdir)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_sample.py").write_text(test_body)
    return root


def pytest_command() -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml={junit}"]


def verify_config(project: Path, timeout_s: float = 120) -> VerifyConfig:
    return VerifyConfig(command=pytest_command(), cwd=str(project), timeout_s=timeout_s)


@contextlib.asynccontextmanager
async def enforcer_at(
    state_dir: Path,
    config: Config | None = None,
    clock: Clock | None = None,
    store_url: str | None = None,
) -> AsyncIterator[Enforcer]:
    """An Enforcer over `state_dir`: SQLite there, or the PostgreSQL database at `store_url`."""
    async with open_runtime(
        state_dir, config=config or Config(), clock=clock or ManualClock(), store_url=store_url
    ) as rt:
        yield Enforcer(rt)


@contextlib.asynccontextmanager
async def servers(
    state: Path, url: str | None, count: int, clock: Clock, config: Config
) -> AsyncIterator[list[Enforcer]]:
    """`count` enforcers, each on its own store, over one database and state directory: as
    several `phasegate serve` processes are (the store contract tests)."""
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for _ in range(count):
            rt = await stack.enter_async_context(
                open_runtime(state, config=config, clock=clock, store_url=url)
            )
            out.append(Enforcer(rt))
        yield out


async def entries(e: Enforcer, task: str | None = None) -> list[LedgerEntry]:
    """Every ledger entry (of one task when given), in seq order."""
    if task is None:
        sql, params = "SELECT seq, prev, leaf_hash, entry FROM ledger ORDER BY seq", ()
    else:
        sql, params = (
            "SELECT seq, prev, leaf_hash, entry FROM ledger WHERE task = ? ORDER BY seq",
            (task,),
        )
    rows = await e.store.read(lambda tx: tx.all(sql, params))
    return [LedgerEntry.from_row(*r) for r in rows]


async def types(e: Enforcer, task: str | None = None) -> list[str]:
    return [x.type for x in await entries(e, task)]


def files_under(path: Path) -> list[str]:
    """Relative paths of every regular file below `path` (empty when it does not exist)."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def put_valid(e: Enforcer, caller: Caller, task: str, phase: Phase) -> None:
    name, content = VALID[phase]
    rec = await e.evidence_put(caller, task, name, content)
    assert rec.valid, rec.problems


async def advance_to(e: Enforcer, caller: Caller, task: str, target: Phase) -> None:
    """Record what each gate needs (verify_run for the server's results) and advance until the
    task is at `target`."""
    by_name = dict(VALID.values())
    while (status := await e.task_status(task)).task.phase is not target:
        required = e.required(status.task.phase)
        if RESERVED_SERVER_ARTIFACTS & set(required):
            await e.verify_run(caller, task)
        for name in required:
            if name not in RESERVED_SERVER_ARTIFACTS:
                rec = await e.evidence_put(caller, task, name, by_name.get(name, "notes\n"))
                assert rec.valid, rec.problems
        await e.phase_advance(caller, task)
