"""The policy's cost per promotion decision on a 1,000-file diff (target: p50 at most 1 ms,
plus diff parsing).

    python scripts/bench_policy.py                 # 5 runs of 300 decisions, 1,000 files
    python scripts/bench_policy.py --runs 7 --files 2000

A real state directory: a module registered from a small tree, a policy file with forbidden,
locked and high-risk patterns, install windows and limits, and a draft that adds ``--files``
files in one patch, validated in the sandbox. Its promotion opens an approval request. Then:

- diff: the unified diff of the draft against its base (``manifest_diff``, what draft_promote
  computes before asking the policy) and parsing that text back with ``unidiff`` into paths and
  line counts (what a policy fed a patch would pay): the "plus diff parsing" of the target;
- decision: `Policy.decide` on the promotion's request (every changed path against every
  pattern, the risk class, exceptions, today's counts, the approval request, and the check of
  ``phasegate.toml`` for changes), timed call by call inside one read transaction, for the
  request pending and again once approved; and the file check alone.

Each run prints p50 and p99 in milliseconds; the summary is the median over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unidiff.patch import PatchSet

from enforcer.errors import ApprovalRequiredError
from enforcer.model import Caller
from enforcer.modules.diffs import manifest_diff
from enforcer.modules.policy_hook import PolicyRequest
from enforcer.modules.records import draft_row, version_row
from enforcer.phases import ORDER, Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

AGENT = Caller("bench-agent", instance="bench")
ADMIN = Caller("bench-admin", role="admin", instance="bench")
TARGET_MS = 1.0
POLICY = """
[policy]
max_promotions_per_day = 1000
[policy.risk]
high_paths = ["**/auth/**", "**/*.key"]
[policy.modules.skills]
forbidden_paths = ["secrets/**", "*.pem", "**/.env"]
locked_paths = ["LICENSE", "prompts/system.md"]
high_paths = ["billing/**"]
install_windows = ["Mon-Fri 08:00-18:00", "Sat 10:00-12:00"]
"""


def patch_adding(files: int) -> str:
    parts = []
    for i in range(files):
        path = f"src/pkg{i % 40}/mod{i}/notes_{i}.md"
        parts.append(
            f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{path}\n@@ -0,0 +1,2 @@\n+# Notes {i}\n+body\n"
        )
    return "".join(parts)


def timed(fn: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def build(stack: contextlib.AsyncExitStack, root: Path, files: int) -> tuple[Enforcer, str]:
    gates = "".join(f"[gates.{p.value}]\nartifacts = []\n" for p in ORDER if p is not Phase.DONE)
    config = root / "phasegate.toml"
    config.write_text(gates + POLICY)
    source = root / "src"
    (source / "prompts").mkdir(parents=True)
    (source / "check.py").write_text("print('ok')\n")
    (source / "SKILL.md").write_text("# Skill\n")
    (source / "prompts" / "system.md").write_text("# System\n")
    rt = await stack.enter_async_context(open_runtime(root / "state", config_path=config))
    e = Enforcer(rt)
    await e.modules.module_add(ADMIN, "skills", source, root / "live", [sys.executable, "check.py"])
    await e.task_start(AGENT, "bench", "T1")
    draft = (await e.modules.draft_create(AGENT, "T1", "skills"))["draft"]
    await e.modules.draft_apply_patch(AGENT, draft, patch_adding(files))
    assert (await e.modules.draft_validate(AGENT, draft))["state"] == "VALIDATED"
    with contextlib.suppress(ApprovalRequiredError):  # it opens the request the runs decide on
        await e.modules.draft_promote(AGENT, draft)
    return e, draft


async def main(runs: int, decisions: int, files: int) -> int:
    with tempfile.TemporaryDirectory(prefix="phasegate-bench-policy-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            e, draft = await build(stack, Path(tmp), files)
            return await measure(e, draft, runs, decisions)


async def measure(e: Enforcer, draft: str, runs: int, decisions: int) -> int:
    kit = e.modules.kit
    row = await e.store.read(lambda tx: draft_row(tx, draft))
    source = await e.store.read(lambda tx: version_row(tx, "skills", row.base_version))
    base, current = kit.manifest(source.bundle_sha256), kit.manifest(row.bundle_sha256)
    diff = manifest_diff(base, current, kit.content)
    request = PolicyRequest(
        "promote",
        "skills",
        draft,
        "T1",
        AGENT.actor,
        tuple(c["path"] for c in diff.changes),
        diff.files,
        diff.added,
        diff.removed,
        diff.sha256,
        1,
    )
    policy = e.policy
    first = await e.store.read(lambda tx: policy.decide(request, tx))
    assert first.kind == "needs_approval" and first.risk == "MEDIUM", first
    print(
        f"policy decision on a {diff.files:,}-file diff (+{diff.added:,} -{diff.removed:,},"
        f" {len(diff.text):,} bytes), {runs} runs x {decisions} decisions"
    )
    rows: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, times: list[float]) -> None:
        rows.setdefault(name, []).append((p(times, 0.5), p(times, 0.99)))

    for run in range(runs):
        record(
            "diff: manifest_diff (draft vs base)",
            timed(lambda: manifest_diff(base, current, kit.content), max(3, decisions // 50)),
        )
        record(
            "diff: parse the text (unidiff)",
            timed(lambda: PatchSet(diff.text), max(3, decisions // 50)),
        )
        record(
            "decision: approval pending",
            await e.store.read(lambda tx: timed(lambda: policy.decide(request, tx), decisions)),
        )
        record("decision: file check only", timed(policy.source.current, decisions))
        if run == 0:
            await e.approvals.approve(ADMIN, f"{draft}-r1", "bench")
        record(
            "decision: approved",
            await e.store.read(lambda tx: timed(lambda: policy.decide(request, tx), decisions)),
        )
        cells = "  ".join(f"{name.split(': ')[1]} {v[-1][0]:.3f}" for name, v in rows.items())
        print(f"  run {run + 1}: p50 ms  {cells}")
    print("medians over runs (p50 / p99, ms):")
    for name, values in rows.items():
        p50 = statistics.median(v[0] for v in values)
        p99 = statistics.median(v[1] for v in values)
        print(f"  {name:38} {p50:8.3f} / {p99:8.3f}")
    worst = max(
        statistics.median(v[0] for v in values)
        for name, values in rows.items()
        if name.startswith("decision: a")
    )
    met = worst <= TARGET_MS
    print(
        f"target p50 <= {TARGET_MS} ms per decision, diff aside: {'met' if met else 'MISSED'}"
        f" ({worst:.3f} ms)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=300, help="timed decisions per run")
    parser.add_argument("--files", type=int, default=1000, help="files the draft adds")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.runs, args.decisions, args.files)))
