"""The error contract on the wire, for every tool in the catalogue: a refusal is `isError` with
the JSON body as its one text content and no `structuredContent` (clients validate that against
the output schema, even on errors); a success's `structuredContent` validates against the tool's
advertised output schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from server_kit import ERROR_KEYS, advance_to, memory_client, put_artifact

from enforcer.config import Config
from enforcer.phases import Phase


class Contract:
    """Checks each result against the contract and remembers which tools were seen how."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.refused: set[str] = set()
        self.succeeded: set[str] = set()

    def check(self, name: str, result: Any) -> Any:
        if result.is_error:
            assert result.structured_content is None, (name, result.structured_content)
            texts = [c for c in result.content if getattr(c, "type", None) == "text"]
            assert len(texts) == 1, (name, result.content)
            body = json.loads(texts[0].text)
            assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, (name, body)
            self.refused.add(name)
            return body
        payload = result.structured_content
        jsonschema.validate(payload, self.schemas[name])
        self.succeeded.add(name)
        return payload


async def test_every_refusal_has_no_structured_content_and_every_success_fits_its_schema(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as client:
        tools = (await client.list_tools()).tools
        contract = Contract({t.name: t.output_schema or {} for t in tools})
        names = {t.name for t in tools}

        async def call(name: str, args: dict[str, Any]) -> Any:
            return contract.check(name, await client.call_tool(name, args))

        for name in sorted(names):  # a refusal of each: an argument no tool takes
            await call(name, {"no_such_argument": 1})
        for name in sorted(names):  # and of each that names a task: a task that is not there
            if "task" in (next(t for t in tools if t.name == name).input_schema["properties"]):
                await call(name, {"task": "NOPE"})

        await call("task_start", {"title": "contract", "task": "T1"})
        await call("task_status", {"task": "T1"})
        await call("task_list", {})
        await call("lease_acquire", {"task": "T1"})
        await call("lease_renew", {"task": "T1"})
        await call("prompt_attest", {"task": "T1", "prompt": "you are an agent"})
        await call("evidence_put", {"task": "T1", "name": "notes.md", "content": "- a note\n"})
        await call("evidence_list", {"task": "T1"})
        await call("evidence_read", {"task": "T1", "phase": "STRATEGIZE", "name": "notes.md"})
        await call("controls_status", {})
        await call("ledger_tail", {"limit": 5})
        await call("ledger_verify", {})
        await advance_to(client, "T1", Phase.SPEC)
        await call("phase_backtrack", {"task": "T1", "to": "STRATEGIZE", "reason": "again"})
        await advance_to(client, "T1", Phase.IMPLEMENT)
        await put_artifact(client, "T1", Phase.IMPLEMENT)
        await call("verify_run", {"task": "T1"})
        await call("phase_advance", {"task": "T1"})
        await call("lease_release", {"task": "T1"})

    assert contract.refused == names
    lifecycle = {n for n in names if n.startswith(("draft_", "module_", "policy_"))}
    assert contract.succeeded == names - lifecycle, sorted(names - lifecycle - contract.succeeded)


async def test_every_module_tool_success_fits_its_advertised_output_schema(
    state_dir: Path, config: Config, tmp_path: Path
) -> None:
    """The governed-module tools too: each called once successfully, each result checked."""
    from module_kit import every_module_tool, register

    await register(state_dir, tmp_path, config)
    async with memory_client(state_dir, config) as client:
        tools = (await client.list_tools()).tools
        contract = Contract({t.name: t.output_schema or {} for t in tools})

        class Checked:
            async def call_tool(self, name: str, args: dict[str, Any]) -> Any:
                result = await client.call_tool(name, args)
                contract.check(name, result)
                return result

        checked = Checked()
        await checked.call_tool("task_start", {"title": "modules", "task": "M1"})
        await advance_to(checked, "M1", Phase.IMPLEMENT)
        await every_module_tool(checked, "M1", advance_to)
    lifecycle = {t.name for t in tools if t.name.startswith(("draft_", "module_", "policy_"))}
    assert lifecycle <= contract.succeeded, sorted(lifecycle - contract.succeeded)
