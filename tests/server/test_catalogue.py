"""What the server offers a client: the tool list (its size on the wire, names, arguments,
annotations, output schemas) and the MCP resources."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import MCPError
from mcp_types import INVALID_PARAMS
from mcp_types.version import LATEST_HANDSHAKE_VERSION
from server_kit import (
    ARTIFACTS,
    REPO,
    ledger_rows,
    memory_client,
    ok,
    put_artifact,
    serve_args,
    stdio_session,
    write_toml,
)

from enforcer.config import Config
from enforcer.phases import Phase
from server.catalogue import TOOLS

TOOLS_LIST_BUDGET = 20 * 1024

# DESIGN.md, MCP tools: the names and argument names are the contract (a trailing ? = optional).
CONTRACT = {
    "task_start": ["title", "task?"],
    "task_status": ["task"],
    "task_list": ["phase?"],
    "lease_acquire": ["task", "ttl_s?"],
    "lease_renew": ["task"],
    "lease_release": ["task"],
    "evidence_put": ["task", "name", "content"],
    "evidence_list": ["task", "phase?"],
    "evidence_read": ["task", "phase", "name"],
    "prompt_attest": ["task", "prompt"],
    "phase_advance": ["task", "to?"],
    "phase_backtrack": ["task", "to", "reason"],
    "verify_run": ["task"],
    "ledger_tail": ["limit?", "task?"],
    "ledger_verify": [],
    "controls_status": [],
    "module_list": [],
    "module_versions": ["module"],
    "draft_create": ["task", "module", "from_version?"],
    "draft_write": ["draft", "path", "content"],
    "draft_delete_file": ["draft", "path"],
    "draft_apply_patch": ["draft", "patch"],
    "draft_rebase": ["draft"],
    "draft_diff": ["draft"],
    "draft_show": ["draft", "path?"],
    "draft_validate": ["draft"],
    "draft_discard": ["draft", "reason"],
    "policy_check": ["draft"],
    "draft_promote": ["draft"],
    "module_install": ["task", "module", "version"],
    "module_rollback": ["task", "module", "reason", "to_version?"],
}


async def _rpc(proc: asyncio.subprocess.Process, message: dict[str, Any]) -> bytes | None:
    """Send one JSON-RPC line; return the raw response line to it (None for a notification)."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    await proc.stdin.drain()
    if "id" not in message:
        return None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the server closed stdout"
        if json.loads(line).get("id") == message["id"]:
            return line


async def test_the_whole_tools_list_answer_on_the_wire_stays_within_20_kb(
    state_dir: Path, sample_project: Path
) -> None:
    write_toml(state_dir, sample_project)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *serve_args(state_dir, "alice"),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=1024 * 1024,
    )
    try:
        hello = {"name": "size-probe", "version": "0"}
        await _rpc(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": LATEST_HANDSHAKE_VERSION,
                    "capabilities": {},
                    "clientInfo": hello,
                },
            },
        )
        await _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        raw = await _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert raw is not None
    answer = json.loads(raw)
    assert len(answer["result"]["tools"]) == len(TOOLS)
    assert len(raw) <= TOOLS_LIST_BUDGET, f"tools/list is {len(raw)} bytes"


async def test_the_tools_list_a_client_receives_stays_within_20_kb(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as c:
        listed = await c.list_tools()
    # What the client received, as JSON: without the nulls its own model adds for every field
    # the server did not send (title, icons, execution, _meta... ≈ 80 bytes a tool).
    received = listed.model_dump_json(by_alias=True, exclude_none=True).encode()
    assert len(received) <= TOOLS_LIST_BUDGET, f"tools/list is {len(received)} bytes"


async def test_tool_names_and_arguments_are_the_contract(state_dir: Path, config: Config) -> None:
    async with memory_client(state_dir, config) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == set(CONTRACT)
    for name, arguments in CONTRACT.items():
        schema = tools[name].input_schema
        properties = set(schema.get("properties", {}))
        required = set(schema.get("required", []))
        wanted = {a.rstrip("?") for a in arguments}
        assert wanted <= properties, name
        assert required == {a for a in arguments if not a.endswith("?")}, name
        assert tools[name].description, name
        assert tools[name].output_schema is not None, name


async def test_read_only_tools_carry_read_only_hint_and_the_rest_do_not(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    read_only = {t.name for t in TOOLS if t.read_only}
    assert read_only == {
        "task_status",
        "task_list",
        "evidence_list",
        "evidence_read",
        "ledger_tail",
        "ledger_verify",
        "controls_status",
        "module_list",
        "module_versions",
        "draft_diff",
        "draft_show",
        "policy_check",
    }
    destructive = {"phase_backtrack", "draft_discard", "module_rollback"}
    for spec in TOOLS:
        hints = tools[spec.name].annotations
        assert hints is not None, spec.name
        assert hints.read_only_hint is spec.read_only, spec.name
        assert hints.open_world_hint is False
        if spec.read_only:
            assert hints.destructive_hint is None and hints.idempotent_hint is True
        else:
            assert hints.destructive_hint is (spec.name in destructive), spec.name
    assert tools["lease_release"].annotations.idempotent_hint is True  # type: ignore[union-attr]
    assert tools["evidence_put"].annotations.idempotent_hint is False  # type: ignore[union-attr]


# ------------------------------------------------------------------ resources


async def test_task_status_evidence_and_ledger_tail_are_readable_as_resources(
    state_dir: Path, config: Config
) -> None:
    name, content = ARTIFACTS[Phase.STRATEGIZE]
    async with memory_client(state_dir, config) as c:
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        assert templates == {
            "phasegate://tasks/{task}/status",
            "phasegate://tasks/{task}/evidence/{phase}/{name}",
            "phasegate://ledger/tail/{limit}",
        }
        ok(await c.call_tool("task_start", {"title": "resources", "task": "RS1"}))
        await put_artifact(c, "RS1", Phase.STRATEGIZE)

        read = await c.read_resource("phasegate://tasks/RS1/status", cache_mode="bypass")
        status = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        tool_status = ok(await c.call_tool("task_status", {"task": "RS1"}))
        assert status["phase"] == "STRATEGIZE" and status["gate"]["passed"] is True
        same = set(status) - {"hints"}  # the tool adds "gate passes: ..." advice
        assert {k: tool_status[k] for k in same} == {k: status[k] for k in same}

        read = await c.read_resource(f"phasegate://tasks/RS1/evidence/STRATEGIZE/{name}")
        assert read.contents[0].text == content  # type: ignore[union-attr]

        read = await c.read_resource("phasegate://ledger/tail/3", cache_mode="bypass")
        tail = json.loads(read.contents[0].text)  # type: ignore[union-attr]
        rows = ledger_rows(state_dir)
        assert [e["seq"] for e in tail] == [e["seq"] for e in rows[-3:]]
        assert [e["type"] for e in tail] == [e["type"] for e in rows[-3:]]


async def test_a_resource_for_an_unknown_task_or_artifact_is_not_found_without_a_crash(
    state_dir: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    async with memory_client(state_dir, config) as c:
        ok(await c.call_tool("task_start", {"title": "resources", "task": "RS2"}))
        with caplog.at_level(logging.INFO):
            for uri in (
                "phasegate://tasks/NOPE/status",
                "phasegate://tasks/RS2/evidence/STRATEGIZE/strategy.md",
            ):
                with pytest.raises(MCPError) as raised:
                    await c.read_resource(uri)
                assert raised.value.code == INVALID_PARAMS, uri
            with pytest.raises(MCPError):
                await c.read_resource("phasegate://tasks/RS2/evidence/NOPE/x..y")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_resources_are_readable_over_stdio(state_dir: Path, sample_project: Path) -> None:
    write_toml(state_dir, sample_project)
    async with stdio_session(state_dir) as s:
        ok(await s.call_tool("task_start", {"title": "stdio resources", "task": "RS3"}))
        read = await s.read_resource("phasegate://tasks/RS3/status")
        assert json.loads(read.contents[0].text)["task"] == "RS3"  # type: ignore[union-attr]
        read = await s.read_resource("phasegate://ledger/tail/1")
        assert len(json.loads(read.contents[0].text)) == 1  # type: ignore[union-attr]
