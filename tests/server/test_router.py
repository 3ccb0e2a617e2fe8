"""The router, the single choke point, driven in memory through the SDK client: the phase table
(default and overridden by `[tools]` in configuration) decides every call in every phase, calls
naming no task may only read, and refusals come in a fixed order."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from module_kit import FIRST_DRAFT, MODULE, draft_for, register
from server_kit import (
    ARTIFACTS,
    INSTANCE,
    code_of,
    error_body,
    journal,
    ledger_types,
    make_config,
    memory_client,
    ok,
    put_artifact,
    refusal,
)

from enforcer.config import ActorConfig, Config
from enforcer.model import Caller
from enforcer.phases import ORDER, Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer
from server.app import ServeOptions, build_server
from server.catalogue import TOOLS, ToolSpec, tool_table
from server.journal import Journal
from server.router import Router
from server.tools import HANDLERS

NOT_DONE = [p.value for p in ORDER if p is not Phase.DONE]

# Restrictions chosen so that a task can still be driven to DONE with them in force.
OVERRIDES: dict[str, list[str]] = {
    "evidence_put": NOT_DONE,
    "verify_run": ["VERIFY"],
    "prompt_attest": ["STRATEGIZE", "VERIFY", "REVIEW", "MONITOR"],
    "evidence_list": ["PLAN", "THINK"],
    "lease_acquire": ["SPEC"],
    "lease_renew": ["SPEC", "DONE"],
    "phase_backtrack": ["REVIEW", "PR"],
    "ledger_tail": ["DONE"],
    "task_status": NOT_DONE,
}


def valid_arguments(spec: ToolSpec, task: str, phase: Phase) -> dict[str, Any]:
    """Arguments that pass the tool's schema and change nothing that matters to the drive."""
    by_tool: dict[str, dict[str, Any]] = {
        "task_start": {"title": "probe"},
        "task_list": {"phase": phase.value},
        "lease_acquire": {"task": task, "ttl_s": 300},
        "lease_renew": {"task": task, "ttl_s": 300},
        "evidence_put": {"task": task, "name": "notes.md", "content": "probe"},
        "evidence_list": {"task": task, "phase": phase.value},
        "evidence_read": {"task": task, "phase": "STRATEGIZE", "name": "strategy.md"},
        "prompt_attest": {"task": task, "prompt": "the same prompt every time"},
        "phase_advance": {"task": task},
        # Not before the current phase: refused as an argument, never a move.
        "phase_backtrack": {"task": task, "to": phase.value, "reason": "probe"},
        "ledger_tail": {"limit": 5, "task": task},
        "ledger_verify": {},
        "controls_status": {},
        # The governed-module tools, on the module and draft `seeded` made for the task.
        "module_list": {},
        "module_versions": {"module": MODULE},
        "draft_create": {"task": task, "module": MODULE},
        "draft_write": {"draft": FIRST_DRAFT, "path": "probe.md", "content": "# probe\n"},
        "draft_delete_file": {"draft": FIRST_DRAFT, "path": "no-such.md"},
        "draft_apply_patch": {"draft": FIRST_DRAFT, "patch": "not a diff"},
        "draft_discard": {"draft": FIRST_DRAFT, "reason": "probe"},
        "module_install": {"task": task, "module": MODULE, "version": 1},
        "module_rollback": {"task": task, "module": MODULE, "reason": "probe"},
    }
    if spec.name not in by_tool and "draft" in spec.args.model_fields:
        by_tool[spec.name] = {"draft": FIRST_DRAFT}
    arguments = by_tool.get(spec.name, {"task": task})
    spec.args.model_validate(arguments)  # the probe itself must be valid
    return arguments


def is_router_out_of_phase(result: Any) -> bool:
    """The router's OUT_OF_PHASE names the allowed phases (the domain's DONE refusal does not)."""
    return (
        code_of(result) == "OUT_OF_PHASE"
        and "allowed_phases" in (error_body(result)["error"]["details"])
    )


@pytest.mark.parametrize("overrides", [{}, OVERRIDES], ids=["default-table", "overridden-table"])
async def test_every_tool_is_allowed_or_out_of_phase_in_every_phase_exactly_as_the_table_says(
    state_dir: Path, sample_project: Path, overrides: dict[str, list[str]]
) -> None:
    config = make_config(sample_project, tools=overrides)
    table = tool_table(overrides)
    assert list(table) == [t.name for t in TOOLS]
    refused: set[tuple[str, Phase]] = set()
    await register(state_dir, state_dir.parent, config)
    async with memory_client(state_dir, config) as c:
        ok(await c.call_tool("task_start", {"title": "table", "task": "R1"}))
        assert await draft_for(state_dir, "R1") == FIRST_DRAFT  # draft tools take R1's phase
        for phase in ORDER:
            expected_now = [t.name for t in table.values() if phase in t.phases]
            for spec in table.values():
                result = await c.call_tool(spec.name, valid_arguments(spec, "R1", phase))
                where = f"{spec.name} in {phase.value}: {result.content}"
                if phase in spec.phases:
                    assert not is_router_out_of_phase(result), where
                    if phase is not Phase.DONE:  # DONE is terminal in the domain itself
                        assert code_of(result) != "OUT_OF_PHASE", where
                else:
                    error = refusal(result, "OUT_OF_PHASE")
                    assert error["details"]["phase"] == phase.value, where
                    assert error["details"]["allowed_phases"] == sorted(
                        p.value for p in spec.phases
                    )
                    assert error["details"]["tools_allowed_now"] == expected_now
                    refused.add((spec.name, phase))
            if phase is Phase.DONE:
                break
            status = ok(await c.call_tool("task_list", {"phase": phase.value}))["tasks"]
            assert [t["task"] for t in status if t["task"] == "R1"] == ["R1"]
            moved = await _leave(c, "R1", phase)
            assert moved["phase"] == phase.next
            if "task_status" not in overrides or phase.next in table["task_status"].phases:
                assert moved["tools_allowed"] == [
                    t.name for t in table.values() if phase.next in t.phases
                ]
    assert refused == {(t.name, p) for t in table.values() for p in ORDER if p not in t.phases}


async def _leave(c: Any, task: str, phase: Phase) -> dict[str, Any]:
    """Satisfy `phase`'s gate (unless a probe above already did) and advance."""
    result = await c.call_tool("phase_advance", {"task": task})
    if not result.is_error:
        return ok(result)
    assert code_of(result) == "EVIDENCE_MISSING", result.content
    await put_artifact(c, task, phase)
    return ok(await c.call_tool("phase_advance", {"task": task}))


async def test_a_tools_override_moves_a_tool_to_other_phases(
    state_dir: Path, sample_project: Path
) -> None:
    config = make_config(sample_project, tools={"evidence_put": ["SPEC"], "ledger_tail": ["SPEC"]})
    me = Caller("alice", "operator", INSTANCE, os.getpid(), socket.gethostname())
    name, content = ARTIFACTS[Phase.STRATEGIZE]
    async with memory_client(state_dir, config) as c:
        started = ok(await c.call_tool("task_start", {"title": "override", "task": "O1"}))
        assert "evidence_put" not in started["tools_allowed"]
        put = {"task": "O1", "name": name, "content": content}
        error = refusal(await c.call_tool("evidence_put", put), "OUT_OF_PHASE")
        assert error["details"]["allowed_phases"] == ["SPEC"]
        refusal(await c.call_tool("ledger_tail", {"task": "O1"}), "OUT_OF_PHASE")
        ok(await c.call_tool("ledger_tail", {}))  # naming no task, a read is not phase-bound

        # The table binds the MCP face only: the domain API (a supervisor's path) still works.
        async with open_runtime(state_dir, config=config) as rt:
            domain = Enforcer(rt)
            await domain.evidence_put(me, "O1", name, content)
            await domain.phase_advance(me, "O1")

        status = ok(await c.call_tool("task_status", {"task": "O1"}))
        assert status["phase"] == "SPEC" and "evidence_put" in status["tools_allowed"]
        spec_name, spec_content = ARTIFACTS[Phase.SPEC]
        rec = ok(
            await c.call_tool(
                "evidence_put", {"task": "O1", "name": spec_name, "content": spec_content}
            )
        )
        assert rec["valid"] is True
        ok(await c.call_tool("ledger_tail", {"task": "O1"}))
        listed = {t.name for t in (await c.list_tools()).tools}
        assert listed == {t.name for t in TOOLS}


def test_a_tools_override_naming_an_unknown_tool_is_refused_at_build_time(
    state_dir: Path, sample_project: Path
) -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        build_server(
            ServeOptions(
                state_dir=state_dir, config=make_config(sample_project, tools={"rm_rf": ["SPEC"]})
            )
        )
    assert tool_table({})["verify_run"].phases == frozenset({Phase.IMPLEMENT, Phase.VERIFY})


async def test_a_call_naming_no_task_may_only_use_read_only_tools(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as c:
        usable = set()
        for spec in TOOLS:
            arguments = {"title": "names no task"} if spec.creates_task else {}
            result = await c.call_tool(spec.name, arguments)
            if result.is_error:
                error = refusal(result, "INVALID_ARGUMENT")
                missing = {
                    p["argument"] for p in error["details"]["problems"] if p["problem"] == "missing"
                }
                assert missing & {"task", "draft", "module"}, (spec.name, missing)
            else:
                usable.add(spec.name)
        # task_start names no existing task: it is the one mutating call that creates one.
        assert usable == {
            "task_start",
            "task_list",
            "ledger_tail",
            "ledger_verify",
            "controls_status",
            "module_list",
        }
        assert usable - {"task_start"} <= {t.name for t in TOOLS if t.read_only}
        # Every other mutating tool requires a task in its schema, or a draft (whose task the
        # router reads).
        for spec in TOOLS:
            if not spec.read_only and not spec.creates_task:
                required = set(spec.args.model_json_schema()["required"])
                assert {"task", "draft"} & required, spec.name
    assert ledger_types(state_dir).count("task.started") == 1


async def test_refusals_come_in_order_arguments_then_role_then_freeze_then_task_then_phase(
    state_dir: Path, sample_project: Path
) -> None:
    config = make_config(sample_project, actors={"vic": ActorConfig(role="viewer")})
    admin = Caller("root", "admin", "cli")
    async with memory_client(state_dir, config) as c:
        ok(await c.call_tool("task_start", {"title": "order", "task": "Q1"}))
    async with memory_client(state_dir, config, actor="vic") as viewer:
        # a bad argument beats the role
        refusal(await viewer.call_tool("verify_run", {"task": 1}), "INVALID_ARGUMENT")
        # the role beats an unknown task
        refusal(await viewer.call_tool("verify_run", {"task": "NOPE"}), "FORBIDDEN")
    async with open_runtime(state_dir, config=config) as rt:
        await Enforcer(rt).set_control(admin, "freeze", True, "order test")
    async with memory_client(state_dir, config) as c:
        # the freeze beats an unknown task and the phase table; reads still work
        refusal(await c.call_tool("verify_run", {"task": "NOPE"}), "FROZEN")
        refusal(await c.call_tool("verify_run", {"task": "Q1"}), "FROZEN")
        ok(await c.call_tool("task_status", {"task": "Q1"}))
    async with open_runtime(state_dir, config=config) as rt:
        await Enforcer(rt).set_control(admin, "freeze", False, "order test")
    async with memory_client(state_dir, config) as c:
        # an unknown task beats the phase table, which beats the gate
        refusal(await c.call_tool("verify_run", {"task": "NOPE"}), "NOT_FOUND")
        refusal(await c.call_tool("verify_run", {"task": "Q1"}), "OUT_OF_PHASE")
        refusal(await c.call_tool("phase_advance", {"task": "Q1"}), "EVIDENCE_MISSING")


async def test_a_repeated_task_status_is_rendered_once_per_role_and_afresh_after_any_change(
    state_dir: Path, sample_project: Path
) -> None:
    """The router reuses a rendered task_status result while the enforcer serves the same
    cached status; a different role, or any change to the task, gets its own result."""
    config = make_config(sample_project)
    alice = Caller("alice", "operator", INSTANCE)
    vic = Caller("vic", "viewer", INSTANCE)
    async with open_runtime(state_dir, config=config) as rt:
        journal_ = Journal(rt.paths.evidence)
        router = Router(Enforcer(rt), tool_table({}), HANDLERS, journal_)

        class AsAlice:
            async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
                return await router.call(name, arguments, alice)

        try:
            ok(await router.call("task_start", {"title": "memo", "task": "M1"}, alice))
            first = await router.call("task_status", {"task": "M1"}, alice)
            assert await router.call("task_status", {"task": "M1"}, alice) is first
            as_viewer = await router.call("task_status", {"task": "M1"}, vic)
            assert as_viewer is not first
            assert "evidence_put" in ok(first)["tools_allowed"]
            assert "evidence_put" not in ok(as_viewer)["tools_allowed"]
            assert await router.call("task_status", {"task": "M1"}, vic) is as_viewer

            await put_artifact(AsAlice(), "M1", Phase.STRATEGIZE)
            after = await router.call("task_status", {"task": "M1"}, alice)
            assert after is not first
            assert ok(after)["gate"]["passed"] is True and ok(first)["gate"]["passed"] is False
            assert json.loads(after.content[0].text) == after.structured_content  # type: ignore[union-attr]
            await router.call("phase_advance", {"task": "M1"}, alice)
            assert ok(await router.call("task_status", {"task": "M1"}, alice))["phase"] == "SPEC"
        finally:
            journal_.close()
    # Every call is journaled, the reused ones too.
    tools = [line["tool"] for line in journal(state_dir, "M1")]
    assert tools.count("task_status") == 6
