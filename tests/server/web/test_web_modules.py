"""Governed modules on the page, in headless Chromium against `phasegate serve --http`: an agent
drafts, validates, promotes and installs over MCP; the supervisor opens the draft's diff, sees
the versions with the active pointer and verified attestations, and rolls the module back."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from module_kit import MODULE, register
from server_kit import advance_to, ledger_rows, ok
from web_kit import CHROMIUM, Site, agent, browser_page, site

from enforcer.phases import Phase

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (.ci/run does it)"
)


@pytest.fixture
def served(tmp_path: Path, sample_project: Path) -> Iterator[Site]:
    with site(tmp_path, sample_project, "serve") as s:
        yield s


async def test_a_drafts_diff_the_versions_and_a_rollback_from_the_page(
    served: Site, tmp_path: Path
) -> None:
    await register(served.state_dir, tmp_path)
    async with agent(served.mcp) as bot:
        ok(await bot.call_tool("task_start", {"title": "Better skill", "task": "T-mod"}))
        await advance_to(bot, "T-mod", Phase.IMPLEMENT)
        draft = ok(await bot.call_tool("draft_create", {"task": "T-mod", "module": MODULE}))
        d = draft["draft"]
        body = "# Review skill\n\nRead <script>window.pwned=1</script> the whole diff.\n"
        ok(await bot.call_tool("draft_write", {"draft": d, "path": "SKILL.md", "content": body}))
        assert ok(await bot.call_tool("draft_validate", {"draft": d}))["state"] == "VALIDATED"
        await advance_to(bot, "T-mod", Phase.PR)
        v2 = ok(await bot.call_tool("draft_promote", {"draft": d}))["version"]
        install = {"task": "T-mod", "module": MODULE, "version": v2}
        ok(await bot.call_tool("module_install", install))

    async with browser_page(served.base, "alice") as page:
        await page.goto(f"{served.base}/tasks/T-mod")
        await page.click(f'ul.drafts a[href="/drafts/{d}"]')
        await page.wait_for_selector("#draft-state")
        assert await page.text_content("#draft-state") == "PROMOTED"
        await page.click("#open-diff")
        await page.wait_for_selector("html[data-ready]", state="attached")
        await page.wait_for_selector(".diffview .row.r-add")
        added = await page.text_content(".diffview .row.r-add")
        assert added is not None and "<script>window.pwned=1</script>" in added
        await page.click("#mode-split")
        await page.wait_for_selector(".diffview .half.r-del")
        assert await page.evaluate("typeof window.pwned") == "undefined"

        await page.goto(f"{served.base}/modules/{MODULE}")
        assert await page.text_content("#active-version") == f"v{v2}"
        for version in (1, v2):
            cell = await page.text_content(f'tr[data-version="{version}"] td:last-child')
            assert cell is not None and "verified" in cell, cell
        await page.fill("#form-rollback input[name=reason]", "v2 reads worse")
        await page.click("#rollback")
        await page.wait_for_selector('#active-version:text-is("v1")')

    rolled = [e for e in ledger_rows(served.state_dir) if e["type"] == "module.rolled_back"]
    assert [(e["actor"], e["data"].get("reason")) for e in rolled] == [("alice", "v2 reads worse")]


async def test_pause_and_resume_promotions_and_approve_a_pending_promotion_from_the_page(
    tmp_path: Path, sample_project: Path
) -> None:
    from server_kit import refusal

    person = "[policy]\nauto_approve = []\n"  # every promotion needs a person
    with site(tmp_path, sample_project, "serve", person) as served:
        await register(served.state_dir, tmp_path)
        async with agent(served.mcp) as bot, browser_page(served.base, "alice") as page:
            ok(await bot.call_tool("task_start", {"title": "Needs a person", "task": "T-app"}))
            await advance_to(bot, "T-app", Phase.IMPLEMENT)
            d = ok(await bot.call_tool("draft_create", {"task": "T-app", "module": MODULE}))
            draft = d["draft"]
            args = {"draft": draft, "path": "notes.md", "content": "# Notes\n- one\n"}
            ok(await bot.call_tool("draft_write", args))
            ok(await bot.call_tool("draft_validate", {"draft": draft}))
            await advance_to(bot, "T-app", Phase.PR)

            await page.goto(f"{served.base}/controls")
            await page.fill("#form-pause input[name=reason]", "release freeze")
            await page.click("#pause-on")
            await page.wait_for_selector("#paused-banner")
            refusal(await bot.call_tool("draft_promote", {"draft": draft}), "PROMOTION_PAUSED")
            await page.fill("#form-pause input[name=reason]", "released")
            await page.click("#pause-off")
            await page.wait_for_selector("#pause-on")

            body = refusal(
                await bot.call_tool("draft_promote", {"draft": draft}), "APPROVAL_REQUIRED"
            )
            request = body["details"]["approval"]
            request_id = request if isinstance(request, str) else request["id"]
            await page.goto(f"{served.base}/approvals")
            row = f'tr[data-approval="{request_id}"]'
            await page.wait_for_selector(f'{row}[data-status="PENDING"]')
            cells = await page.text_content(row)
            assert cells is not None and "LOW" in cells and "1 files +2" in cells
            await page.fill(f"{row} input[name=note]", "read the diff, fine")
            await page.click(f"{row} button.approve")
            await page.wait_for_selector(f'{row}[data-status="APPROVED"]')

            promoted = ok(await bot.call_tool("draft_promote", {"draft": draft}))
            assert promoted["version"] == 2
            await page.wait_for_selector(f'{row}[data-status="EXECUTED"]', timeout=5_000)

    decided = [e for e in ledger_rows(served.state_dir) if e["type"] == "approval.approved"]
    assert [(e["actor"], e["data"]["note"]) for e in decided] == [("alice", "read the diff, fine")]


async def test_the_approvals_page_lists_policy_exceptions_with_their_state_and_escapes_them(
    served: Site, tmp_path: Path
) -> None:
    import json

    from server_kit import cli

    await register(served.state_dir, tmp_path)
    state = ["--state-dir", str(served.state_dir), "--json"]
    hostile = "INC-7 <img src=x onerror=window.pwned=1> hotfix"
    kept = cli(
        "exception",
        "grant",
        MODULE,
        "install_windows",
        "--until",
        "+2h",
        "--reason",
        hostile,
        *state,
    )
    gone = cli(
        "exception",
        "grant",
        MODULE,
        "max_promotions_per_day",
        "--until",
        "+1d",
        "--reason",
        "release day",
        *state,
    )
    kept_id, gone_id = json.loads(kept.stdout)["id"], json.loads(gone.stdout)["id"]
    cli("exception", "revoke", gone_id, "--reason", "no longer needed", *state)

    async with browser_page(served.base, "alice") as page:
        await page.goto(f"{served.base}/approvals")
        await page.wait_for_selector(f'tr[data-exception="{kept_id}"][data-status="ACTIVE"]')
        cells = await page.text_content(f'tr[data-exception="{kept_id}"]')
        assert cells is not None and "install_windows" in cells and hostile in cells, cells
        revoked = await page.text_content(f'tr[data-exception="{gone_id}"][data-status="REVOKED"]')
        assert revoked is not None and "no longer needed" in revoked, revoked
        assert await page.locator("table.exceptions img").count() == 0
        assert await page.evaluate("typeof window.pwned") == "undefined"
