"""The red-team corpus through the agent's path (MCP over stdio), then read back by a
supervisor: nothing reaches the CLI's terminal output unescaped, and nothing lands on the file
system outside the state directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from corpus import ALL, HTML, PATHS, TERMINAL_UNSAFE, UNICODE
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from server_kit import REPO, cli, serve_args


def _outside(root: Path, state: Path) -> set[Path]:
    """Every path under `root` that is not the state directory or inside it."""
    return {p for p in root.rglob("*") if p != state and state not in p.parents}


@pytest.mark.timeout(600)  # some forty process starts: slow on a loaded host
async def test_hostile_agent_text_is_escaped_in_the_cli_and_stays_inside_state(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    outside_before = _outside(tmp_path, state)
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(state, "mallory"), cwd=str(REPO),
        env=dict(os.environ),
    )  # fmt: skip
    accepted: list[str] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        hostile_title = await session.call_tool("task_start", {"title": "\x1b[2Jt", "task": "T0"})
        assert hostile_title.is_error  # control characters in a title are refused outright
        title = ("red team " + "".join(HTML + UNICODE[:2]))[:190]  # printable, but hostile
        started = await session.call_tool("task_start", {"title": title, "task": "T1"})
        assert not started.is_error, started.content
        for i, text in enumerate(ALL):
            body = f"# Problem\n{text}\n# Objectives\n- {text}\n"
            put = await session.call_tool(
                "evidence_put", {"task": "T1", "name": f"r{i}.md", "content": body}
            )
            if not put.is_error:
                accepted.append(f"r{i}.md")
            await session.call_tool("prompt_attest", {"task": "T1", "prompt": text or "p"})
        for name in PATHS:  # path tricks as artifact names are refused, never written
            refused = await session.call_tool(
                "evidence_put", {"task": "T1", "name": name, "content": "x"}
            )
            assert refused.is_error
    assert accepted, "the corpus should be stored as content"
    shown = [
        cli("status", "--state-dir", str(state), check=False),
        cli("status", "T1", "--state-dir", str(state), check=False),
        cli("ledger", "tail", "--limit", "200", "--state-dir", str(state), check=False),
        cli("evidence", "list", "T1", "--state-dir", str(state), check=False),
        *[
            cli("evidence", "show", "T1", "STRATEGIZE", n, "--state-dir", str(state))
            for n in accepted
        ],
    ]
    for done in shown:
        text = done.stdout + done.stderr
        leaked = sorted({repr(c) for c in TERMINAL_UNSAFE if c in text})
        assert leaked == [], (done.args, leaked)
    json_out = cli(
        "evidence", "show", "T1", "STRATEGIZE", accepted[0], "--state-dir", str(state), "--json"
    )
    assert "\x1b" not in json_out.stdout  # JSON escapes controls itself
    assert json.loads(json_out.stdout)["content"].startswith("# Problem")
    outside_after = _outside(tmp_path, state)
    assert outside_after == outside_before, sorted(outside_after - outside_before)
