"""The red-team corpus through governed-module drafts and onto the supervisor's page: an agent
(a real MCP client over ``phasegate serve --http``) writes every hostile string as draft file
content and in draft file names, tries every path trick as a name, validates and asks for the
promotion; a supervisor then reads it all back through the CLI (nothing unescaped reaches the
terminal) and in real headless Chromium (every page that shows it: board, task, ledger,
approvals, module, draft, the draft's diff): no injected script runs, no injected element is
created, the payloads are shown as text. Nothing is written outside the state directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from corpus import ALL, HTML, PAGE, PATHS, TERMINAL_UNSAFE
from module_kit import MODULE, register
from server_kit import advance_to, cli, make_sample_project, ok
from web_kit import CHROMIUM, agent, browser_page, site

from enforcer.phases import Phase

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (.ci/run does it)"
)

POLICY = "[policy]\nauto_approve = []\n"  # the promotion waits in the approvals queue


def _outside(root: Path, state: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p != state and state not in p.parents}


def _names(texts: list[str]) -> list[str]:
    """Hostile file names: each corpus string inside a name (some are refused, some stored)."""
    return [f"red/n{i}-{text[:60]}.md" for i, text in enumerate(texts)]


@pytest.mark.timeout(600)
async def test_hostile_drafts_are_escaped_in_the_cli_and_inert_text_on_every_page(
    tmp_path: Path,
) -> None:
    sample_project = make_sample_project(tmp_path / "sample")
    with site(tmp_path, sample_project, "serve", extra_toml=POLICY) as served:
        state = served.state_dir
        await register(state, tmp_path)
        outside_before = _outside(tmp_path, state)
        stored: list[str] = []
        refused_names = 0
        async with agent(served.mcp) as bot:
            title = ("red team " + "".join(PAGE + HTML[:2]))[:190]
            ok(await bot.call_tool("task_start", {"title": title, "task": "T1"}))
            for i, text in enumerate(PAGE):  # evidence beside the drafts: the task page shows it
                body = f"# Problem\n{text}\n\n# Objectives\n- {text}\n"
                args = {"task": "T1", "name": f"p{i}.md", "content": body}
                ok(await bot.call_tool("evidence_put", args))
            await advance_to(bot, "T1", Phase.IMPLEMENT)
            d = ok(await bot.call_tool("draft_create", {"task": "T1", "module": MODULE}))["draft"]
            for i, text in enumerate(ALL):
                args = {"draft": d, "path": f"a/r{i}.md", "content": f"# r{i}\n{text}\n"}
                if not (await bot.call_tool("draft_write", args)).is_error:
                    stored.append(args["path"])
            for name in _names(ALL):
                args = {"draft": d, "path": name, "content": "# named\n"}
                if (await bot.call_tool("draft_write", args)).is_error:
                    refused_names += 1
                else:
                    stored.append(name)
            # Path tricks as names: refused by every draft tool ("~root/.ssh" is a plain
            # relative name inside the module, no shell expands it: stored like any other).
            for trick in [p for p in PATHS if not p.startswith("~")]:
                for tool, args in (
                    ("draft_write", {"draft": d, "path": trick, "content": "x"}),
                    ("draft_delete_file", {"draft": d, "path": trick}),
                    ("draft_show", {"draft": d, "path": trick}),
                ):
                    result = await bot.call_tool(tool, args)
                    assert result.is_error, (tool, trick)
            patch = "--- /dev/null\n+++ b/../../escaped.md\n@@ -0,0 +1 @@\n+# out\n"
            result = await bot.call_tool("draft_apply_patch", {"draft": d, "patch": patch})
            assert result.is_error
            assert ok(await bot.call_tool("draft_validate", {"draft": d}))["state"] == "VALIDATED"
            await advance_to(bot, "T1", Phase.PR)
            asked = await bot.call_tool("draft_promote", {"draft": d})
            assert asked.is_error and "APPROVAL_REQUIRED" in asked.content[0].text  # type: ignore[union-attr]
        assert len(stored) > len(ALL)  # the content, and the names the server accepts
        # A name with a control character (C0 or C1) or a bidi control is refused: it would
        # reach the disk at the install path, where no escaping protects a terminal.
        unsafe = [n for n in stored if any(c in n for c in TERMINAL_UNSAFE)]
        assert unsafe == [], unsafe

        # The supervisor's terminal.
        where = ["--state-dir", str(state)]
        shown = [
            cli("approvals", *where, check=False),
            cli("policy", "check", d, *where, check=False),
            cli("ledger", "tail", "--limit", "500", *where, check=False),
            cli("module", "list", *where, check=False),
            cli("module", "versions", MODULE, *where, check=False),
            cli("status", "T1", *where, check=False),
        ]
        for done in shown:
            assert done.returncode == 0, (done.args, done.stderr)
            text = done.stdout + done.stderr
            leaked = sorted({repr(c) for c in TERMINAL_UNSAFE if c in text})
            assert leaked == [], (done.args, leaked)
        approvals = cli("approvals", "--json", *where)
        assert "\x1b" not in approvals.stdout and "\u202e" not in approvals.stdout

        # The supervisor's page.
        pages = ["/", "/tasks/T1", "/ledger", "/approvals", f"/modules/{MODULE}", f"/drafts/{d}"]
        async with browser_page(served.base, "alice") as page:
            for path in pages:
                await page.goto(f"{served.base}{path}")
                await page.wait_for_selector("main", state="attached")
                await _inert(page, path)
            await page.goto(f"{served.base}/tasks/T1")
            assert "window.__pwned" in (await page.text_content("main") or "")  # shown as text
            await page.goto(f"{served.base}/drafts/{d}/diff")
            await page.wait_for_selector("html[data-ready]", state="attached")
            await page.wait_for_selector(".diffview .row.r-add")
            await _inert(page, "diff")
            rows = await page.eval_on_selector_all(
                ".diffview .row.r-add", "rs => rs.map(r => r.textContent).join('\\n')"
            )
            assert any(p in rows for p in PAGE), rows[:500]
            await page.click("#mode-split")
            await page.wait_for_selector(".diffview .half.r-del, .diffview .half.r-add")
            await _inert(page, "diff split")
        outside_after = _outside(tmp_path, state)
        assert outside_after == outside_before, sorted(outside_after - outside_before)
    print(f"stored {len(stored)} draft files, refused {refused_names} hostile names,")
    print(f"read back by {len(shown)} CLI commands and {len(pages) + 2} page views: nothing ran")


async def _inert(page: object, where: str) -> None:
    """No payload ran and none became an element."""
    assert await page.evaluate("typeof window.__pwned") == "undefined", where  # type: ignore[attr-defined]
    made = await page.eval_on_selector_all("[data-pwned]", "es => es.length")  # type: ignore[attr-defined]
    assert made == 0, where
