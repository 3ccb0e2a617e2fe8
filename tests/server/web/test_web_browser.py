"""The page in a real headless Chromium against `phasegate serve --http` (a subprocess), with a
real MCP client as the agent over the same server's /mcp: the board moves live while the agent
works, the timeline follows, the switches act through the enforcer, hostile text stays text.

Waits are the browser driver's explicit waits (bounded); nothing sleeps."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_kit import ARTIFACTS, ledger_rows, ok, refusal
from web_kit import CHROMIUM, Site, agent, browser_page, site

from enforcer.phases import Phase

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (.ci/run does it)"
)


@pytest.fixture
def served(tmp_path: Path, sample_project: Path) -> Iterator[Site]:
    with site(tmp_path, sample_project, "serve") as s:
        yield s


async def _put(session: object, task: str, phase: Phase) -> None:
    name, content = ARTIFACTS[phase]
    ok(await session.call_tool("evidence_put", {"task": task, "name": name, "content": content}))  # type: ignore[attr-defined]


async def test_the_board_moves_live_while_an_agent_advances_a_task_over_mcp(served: Site) -> None:
    async with agent(served.mcp) as bot, browser_page(served.base, "alice") as page:
        ok(await bot.call_tool("task_start", {"title": "Live one", "task": "T-live"}))
        await page.wait_for_selector('[data-phase="STRATEGIZE"] [data-task="T-live"]')
        await page.wait_for_selector("html[data-live=on]", state="attached")
        await page.evaluate("window.notReloaded = true")

        await _put(bot, "T-live", Phase.STRATEGIZE)
        ok(await bot.call_tool("phase_advance", {"task": "T-live"}))
        moved = time.monotonic()
        await page.wait_for_selector('[data-phase="SPEC"] [data-task="T-live"]', timeout=5_000)
        seen_after = time.monotonic() - moved
        assert await page.evaluate("window.notReloaded") is True  # live, not reloaded
        assert seen_after < 2.0, f"the board took {seen_after:.2f} s"  # 250 ms poll + refetch
        card = await page.text_content('[data-task="T-live"]')
        assert card is not None and "bot/" in card and "phase.advanced" in card

        await page.click('[data-task="T-live"]')
        await page.wait_for_selector("#task-phase")
        assert await page.text_content("#task-phase") == "SPEC"
        types = await page.eval_on_selector_all(
            "table.ledger tr[data-type]", "rs => rs.map(r => r.dataset.type)"
        )
        assert {"task.started", "evidence.recorded", "phase.advanced"} <= set(types)
        assert "Problem" in (await page.text_content(".md") or "")
        traces = await page.text_content("ul.traces")
        assert traces is not None and "phasegate telemetry trace " in traces

        await page.evaluate("window.notReloaded = true")
        await _put(bot, "T-live", Phase.SPEC)
        ok(await bot.call_tool("phase_advance", {"task": "T-live"}))
        await page.wait_for_selector('#task-phase[data-phase="PLAN"]', timeout=5_000)
        assert await page.evaluate("window.notReloaded") is True


async def test_an_admin_freezes_and_pauses_from_the_page_and_the_agent_sees_it(
    served: Site,
) -> None:
    async with agent(served.mcp) as bot, browser_page(served.base, "alice") as page:
        ok(await bot.call_tool("task_start", {"title": "Held", "task": "T-held"}))
        await page.goto(f"{served.base}/controls")
        await page.fill("#form-freeze input[name=reason]", "incident 7")
        await page.click("#freeze-on")
        await page.wait_for_selector("#frozen-banner")
        refusal(await bot.call_tool("phase_advance", {"task": "T-held"}), "FROZEN")
        await page.fill("#form-freeze input[name=reason]", "resolved")
        await page.click("#freeze-off")
        await page.wait_for_selector("#freeze-on")

        await page.fill("#form-pause input[name=reason]", "release week")
        await page.click("#pause-on")
        await page.wait_for_selector("#paused-banner")
        controls = ok(await bot.call_tool("controls_status", {}))
        assert controls["promotions_paused"] is True
        await page.fill("#form-pause input[name=reason]", "released")
        await page.click("#pause-off")
        await page.wait_for_selector("#pause-on")
        assert ok(await bot.call_tool("controls_status", {}))["promotions_paused"] is False

    changes = [e for e in ledger_rows(served.state_dir) if e["type"].startswith("control.")]
    assert [(e["actor"], e["data"]["active"], e["data"]["reason"]) for e in changes] == [
        ("alice", True, "incident 7"),
        ("alice", False, "resolved"),
        ("alice", True, "release week"),
        ("alice", False, "released"),
    ]


async def test_evidence_with_a_script_renders_as_text_and_runs_nothing(served: Site) -> None:
    hostile = "# Problem\n<script>window.pwned = 1</script>\n\n# Objectives\n- x\n"
    async with agent(served.mcp) as bot, browser_page(served.base, "vic") as page:
        ok(
            await bot.call_tool(
                "task_start", {"title": "<script>window.pwned=2</script>", "task": "T-x"}
            )
        )
        args = {"task": "T-x", "name": "strategy.md", "content": hostile}
        ok(await bot.call_tool("evidence_put", args))
        ok(
            await bot.call_tool(
                "evidence_put",
                {
                    **args,
                    "name": "notes.json",
                    "content": json.dumps({"h": "<script>window.pwned=3</script>"}),
                },
            )
        )
        await page.goto(f"{served.base}/tasks/T-x")
        await page.wait_for_selector(".md", state="attached")
        assert "<script>window.pwned = 1</script>" in (await page.text_content(".md") or "")
        assert await page.evaluate("typeof window.pwned") == "undefined"
        assert await page.eval_on_selector_all("main script", "s => s.length") == 0
        assert await page.query_selector("#break-lease") is None  # a viewer gets no forms


def _big_diff(files: int = 20, per_file: int = 560) -> str:
    out = []
    for f in range(files):
        path = f"src/file_{f:02d}.py"
        out += [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
        for h in range(per_file // 10):
            out.append(f"@@ -{h * 20 + 1},5 +{h * 20 + 1},6 @@")
            out += [f" context {f} {h} {i}" for i in range(2)]
            out += [f"-old line {f} {h}", f"+new line {f} {h}", f"+needle_{f}_{h}"]
            out += [f" context {f} {h} {i}" for i in range(2, 5)]
    return "\n".join(out) + "\n"


async def test_a_ten_thousand_line_diff_is_virtualised_searchable_and_foldable(
    served: Site,
) -> None:
    from server_kit import advance_to

    patch = _big_diff()
    assert patch.count("\n") >= 10_000
    async with agent(served.mcp) as bot, browser_page(served.base, "vic") as page:
        ok(await bot.call_tool("task_start", {"title": "Big", "task": "T-big"}))
        await advance_to(bot, "T-big", Phase.IMPLEMENT)
        args = {"task": "T-big", "name": "git_diff.patch", "content": patch}
        ok(await bot.call_tool("evidence_put", args))
        await page.goto(f"{served.base}/tasks/T-big/evidence/IMPLEMENT/git_diff.patch/diff")
        await page.wait_for_selector("html[data-ready]", state="attached")
        assert len(await page.query_selector_all(".diffview .row")) < 200  # only what is in view

        await page.click("#mode-split")
        await page.wait_for_selector(".diffview .half.r-add")
        await page.fill("#diff-search", "needle_19_55")
        await page.press("#diff-search", "Enter")
        await page.wait_for_selector(".diffview .row.current mark")
        assert await page.text_content("#search-count") == "1 of 1"

        await page.click("#mode-unified")
        await page.click("#fold-all")
        await page.wait_for_selector(".diffview .row.file >> nth=19")
        headers = await page.query_selector_all(".diffview .row.file")
        assert len(headers) == 20
        await headers[3].click()  # unfold one file
        await page.wait_for_selector(".diffview .row.r-add")
        text = await page.text_content(".diffview .window")
        assert text is not None and "▸ src/file_02.py" in text and "▾ src/file_03.py" in text
