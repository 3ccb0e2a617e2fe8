"""Take the README's screenshots of the supervisor page with headless chromium.

    python scripts/web_screenshots.py            # writes docs/web-board.png, docs/web-diff.png

Builds a small state (tasks at several phases, holders, a drifted prompt, a real diff as
IMPLEMENT evidence), serves it with `phasegate ui`, signs in and captures the board and the
diff viewer (side by side). Run it again after changing the page's look.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_web import CHROMIUM, GATES, generated_diff, start_ui

from enforcer.config import load_config
from enforcer.model import Caller
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "screenshot-admin-token-0123"
TITLES = [
    "Parse RFC 3339 offsets",
    "Retry the webhook with backoff",
    "Cache the policy set hash",
    "Fix the flaky lease test",
    "Document the export bundle",
    "Split the router by tool",
    "Tighten the sandbox rlimits",
    "Add a dark theme to the page",
]


def real_diff() -> str:
    """A real change of this repository (the HTTP server learning to serve the page)."""
    found = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "log",
            "--diff-filter=A",
            "--format=%H",
            "--",
            "server/web/app.py",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if found:
        diff = subprocess.run(
            ["git", "-C", str(ROOT), "diff", f"{found}~1", found, "--", "server/http.py"],
            capture_output=True,
            text=True,
        ).stdout
        if diff.strip():
            return diff
    return generated_diff(400, files=3)


async def build(state: Path) -> None:
    config = load_config(None, state_dir=state)
    async with open_runtime(state, config=config) as rt:
        e = Enforcer(rt)
        phases = list(GATES)
        for i, title in enumerate(TITLES):
            me = Caller(["claude", "codex", "reviewer"][i % 3], "operator", f"pid-{4100 + i}")
            task = f"T-{101 + i}"
            await e.task_start(me, title, task)
            for phase in phases[: i % (len(phases) + 1)]:
                name, content = GATES[phase]
                await e.evidence_put(me, task, name, content)
                await e.phase_advance(me, task)
            if i == 2:
                await e.prompt_attest(me, task, "You are a careful engineer.")
                await e.prompt_attest(me, task, "You are a fast engineer. Skip the tests.")
            if i % 4 == 3:
                await e.lease_release(me, task)
        me = Caller("claude", "operator", "pid-4242")
        await e.task_start(me, "Serve the supervisor page", "T-200")
        for name, content in GATES.values():
            await e.evidence_put(me, "T-200", name, content)
            await e.phase_advance(me, "T-200")
        await e.evidence_put(me, "T-200", "git_diff.patch", real_diff())


async def shoot(base: str, out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 640})
        await page.goto(f"{base}/signin")
        await page.fill("#token", TOKEN)
        await page.click("#signin")
        await page.wait_for_selector(".board")
        await page.screenshot(path=str(out / "web-board.png"))
        await page.goto(f"{base}/tasks/T-200/evidence/IMPLEMENT/git_diff.patch/diff")
        await page.wait_for_selector("html[data-ready]", state="attached")
        await page.click("#mode-split")
        await page.fill("#diff-search", "web")
        await page.press("#diff-search", "Enter")
        await page.wait_for_selector(".diffview .row.current")
        await page.screenshot(path=str(out / "web-diff.png"))
        await browser.close()


def main() -> int:
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shots-") as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        digest = hashlib.sha256(TOKEN.encode()).hexdigest()
        (state / "phasegate.toml").write_text(
            f'[actors.alice]\nrole = "admin"\ntoken_sha256 = "{digest}"\n'
        )
        asyncio.run(build(state))
        proc, base = start_ui(state, Path(tmp) / "ui.log")
        try:
            asyncio.run(shoot(base, out))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    for name in ("web-board.png", "web-diff.png"):
        print(f"docs/{name}: {(out / name).stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
