"""Supervisor page benchmark: time to first paint and to interactive in headless Chromium.

    python scripts/bench_web.py                      # 7 runs; 1,000 tasks; a 10,000-line diff
    python scripts/bench_web.py --runs 3 --tasks 200 --diff-lines 2000

Builds a state directory with `--tasks` tasks (through the enforcer, as agents would make them)
and one task at IMPLEMENT whose git_diff.patch is a generated unified diff of `--diff-lines`
lines over 20 files; serves it with `phasegate ui` (a subprocess); signs in once in Debian's
chromium (driven by Playwright), then loads each page `--runs` times in a fresh tab:

- first paint: the browser's ``first-contentful-paint`` (navigation start to the first pixels);
- interactive: the page's own ``pg-interactive`` performance mark, set when its script has
  wired every control (for the diff: after parsing the embedded diff and drawing the first
  rows of the virtualised view) — the moment a click or a search does something.

Targets: first paint <= 300 ms, interactive <= 1 s (medians). Exit 1 when a median misses one.
The sign-in page ("empty", a few hundred bytes) is measured too: the floor a new tab costs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from enforcer.config import load_config
from enforcer.model import Caller
from enforcer.phases import Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

CHROMIUM = "/usr/bin/chromium"
TOKEN = "bench-admin-token-0123456789"
FIRST_PAINT_TARGET_MS = 300
INTERACTIVE_TARGET_MS = 1000
DIFF_TASK = "T-diff"
GATES = {
    Phase.STRATEGIZE: ("strategy.md", "# Problem\nslow\n\n# Objectives\n- fast\n"),
    Phase.SPEC: ("spec.md", "# Acceptance Criteria\n- it is fast\n"),
    Phase.PLAN: ("plan.md", "# Plan\n1. measure\n2. fix\n"),
    Phase.THINK: ("edge_cases.md", "# Edge cases\n- none\n"),
}


def generated_diff(lines: int, files: int = 20, seed: int = 7) -> str:
    """A unified diff of about `lines` lines over `files` files: hunks of context, removals and
    additions, as a large refactoring looks."""
    rng = random.Random(seed)
    out: list[str] = []
    per_file = max(1, lines // files)
    for f in range(files):
        path = f"src/module_{f:02d}/service_{f:02d}.py"
        out += [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
        old_no = new_no = 1
        written = 3
        while written < per_file:
            ctx, rem, add = 3, rng.randint(1, 6), rng.randint(1, 8)
            out.append(
                f"@@ -{old_no},{ctx * 2 + rem} +{new_no},{ctx * 2 + add} @@ def f{written}():"
            )
            for i in range(ctx):
                out.append(f"     value_{i} = compute(value_{i - 1}, {written})  # context")
            out += [f"-    old_call_{i}(argument, other={rng.random():.6f})" for i in range(rem)]
            out += [
                f"+    new_call_{i}(argument, other={rng.random():.6f}, x=1)" for i in range(add)
            ]
            for i in range(ctx):
                out.append(f"     return_value_{i} = finish(value_{i})")
            old_no += ctx * 2 + rem + 10
            new_no += ctx * 2 + add + 10
            written += 1 + ctx * 2 + rem + add
    return "\n".join(out) + "\n"


async def build_state(state_dir: Path, tasks: int, diff_lines: int) -> None:
    config = load_config(None, state_dir=state_dir)
    async with open_runtime(state_dir, config=config) as rt:
        e = Enforcer(rt)
        for i in range(tasks - 1):
            me = Caller(f"agent{i % 17}", "operator", f"bench-{i % 5}")
            await e.task_start(me, f"Task number {i}: make the parser faster", f"T-{i:05d}")
        me = Caller("agent-diff", "operator", "bench")
        await e.task_start(me, "A very large change", DIFF_TASK)
        for name, content in GATES.values():
            await e.evidence_put(me, DIFF_TASK, name, content)
            await e.phase_advance(me, DIFF_TASK)
        await e.evidence_put(me, DIFF_TASK, "git_diff.patch", generated_diff(diff_lines))


_UI_URL = re.compile(r"phasegate ui: (http://[^/\s]+)/")


def start_ui(state: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`phasegate ui` on port 0 over `state`, and its base URL once it is bound: read back from
    the line it prints (no port looked up first, which another process could take)."""
    argv = [sys.executable, "-m", "server.cli", "ui", "--state-dir", str(state), "--port", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = _UI_URL.search(log.read_text(errors="replace"))
        if found:
            return proc, found.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"phasegate ui exited early: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    proc.terminate()
    proc.wait(timeout=10)
    raise SystemExit("phasegate ui did not listen in time")


# first-contentful-paint is reported once the frame is presented: wait for the entry itself.
_PAINTED = """() => new Promise(resolve => {
  if (performance.getEntriesByName('first-contentful-paint').length) return resolve(true);
  new PerformanceObserver((list, observer) => { observer.disconnect(); resolve(true); })
    .observe({type: 'paint', buffered: true});
})"""
# What a reader does on the diff: the handlers run synchronously, so the time around a
# dispatched event is the time to rebuild and draw the view.
_DIFF_ACTIONS = """() => {
  const time = f => { const t = performance.now(); f(); return performance.now() - t; };
  const box = document.getElementById('diff-search');
  const enter = () => box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
  return {
    split: time(() => document.getElementById('mode-split').click()),
    search: time(() => { box.value = 'new_call_3'; enter(); }),
    fold: time(() => document.getElementById('fold-all').click()),
    unified: time(() => document.getElementById('mode-unified').click()),
  };
}"""
_METRICS = """() => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const ready = performance.getEntriesByName('pg-interactive')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  return {fcp: paint ? paint.startTime : null, tti: ready ? ready.startTime : null,
          dcl: nav.domContentLoadedEventEnd, bytes: nav.transferSize,
          ttfb: nav.responseStart, done: nav.responseEnd,
          nodes: document.getElementsByTagName('*').length};
}"""


async def measure(base: str, pages: dict[str, str], runs: int) -> dict[str, list[dict[str, float]]]:
    from playwright.async_api import async_playwright

    results: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await context.new_page()
        await page.goto(f"{base}/signin")
        await page.fill("#token", TOKEN)
        await page.click("#signin")
        await page.wait_for_selector(".board")
        await page.close()
        for run in range(runs + 1):  # run 0 warms the server's and the browser's caches
            for name, path in pages.items():
                tab = await context.new_page()
                await tab.goto(f"{base}{path}", wait_until="load")
                await tab.wait_for_selector("html[data-ready]", state="attached")
                await tab.evaluate(_PAINTED)
                m = await tab.evaluate(_METRICS)
                if name == "diff":
                    m.update(await tab.evaluate(_DIFF_ACTIONS))
                await tab.close()
                if run:
                    results[name].append(m)
                    print(
                        f"  run {run} {name:<6} first paint {m['fcp']:7.1f} ms"
                        f"  interactive {m['tti']:7.1f} ms"
                        f"  (response {m['ttfb']:.0f}-{m['done']:.0f} ms,"
                        f" {m['bytes'] / 1024:.0f} KiB,"
                        f" {m['nodes']} elements)"
                    )
        await browser.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--diff-lines", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        (state / "phasegate.toml").write_text(
            f'[store]\ndurability = "NORMAL"\n[actors.bench]\nrole = "admin"\n'
            f'token_sha256 = "{digest}"\n'
        )
        started = time.monotonic()
        asyncio.run(build_state(state, args.tasks, args.diff_lines))
        print(
            f"state: {args.tasks} tasks, a {args.diff_lines}-line diff"
            f" (built in {time.monotonic() - started:.1f} s)"
        )
        proc, base = start_ui(state, Path(tmp) / "ui.log")
        try:
            pages = {
                "empty": "/signin",  # the floor: a near-empty page of this server in a new tab
                "board": "/",
                "diff": f"/tasks/{DIFF_TASK}/evidence/IMPLEMENT/git_diff.patch/diff",
            }
            results = asyncio.run(measure(base, pages, args.runs))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    missed = False
    diff_runs = results["diff"]
    actions = {k: statistics.median(r[k] for r in diff_runs) for k in ("split", "search", "fold")}
    print(
        "diff actions, median: side by side {split:.0f} ms, search {search:.0f} ms,"
        " fold all {fold:.0f} ms".format(**actions)
    )
    for name, runs in results.items():
        fcp = statistics.median(r["fcp"] for r in runs)
        tti = statistics.median(r["tti"] for r in runs)
        ok = fcp <= FIRST_PAINT_TARGET_MS and tti <= INTERACTIVE_TARGET_MS
        missed |= not ok
        print(
            f"{name:<6} median of {len(runs)}: first paint {fcp:.0f} ms (target"
            f" {FIRST_PAINT_TARGET_MS}), interactive {tti:.0f} ms (target"
            f" {INTERACTIVE_TARGET_MS}) {'ok' if ok else 'MISSED'}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
