"""Arguments are bounded before validation (server/bounds.py): too many keys, too many nested
values, or too much text is INVALID_ARGUMENT naming the bound, found at a cost that stops at the
bound however large the call."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from server_kit import ledger_rows, memory_client, refusal

from enforcer.config import Config
from enforcer.errors import InvalidArgumentError
from server.bounds import MAX_CHARS, MAX_ITEMS, MAX_KEYS, check_bounds


def limit_of(arguments: dict[str, object]) -> str:
    with pytest.raises(InvalidArgumentError) as raised:
        check_bounds("evidence_put", arguments)
    assert raised.value.details["max"] in (MAX_KEYS, MAX_ITEMS, MAX_CHARS)
    return str(raised.value.details["limit"])


def test_calls_within_the_bounds_pass() -> None:
    check_bounds("evidence_put", {"task": "T1", "name": "a.md", "content": "x" * (2 << 20)})
    check_bounds("task_list", {})


def test_too_many_keys_too_many_nested_values_or_too_much_text_is_refused_naming_the_bound() -> (
    None
):
    assert limit_of({f"k{i}": 1 for i in range(MAX_KEYS + 1)}) == "keys"
    assert limit_of({"task": list(range(MAX_ITEMS + 1))}) == "items"
    assert limit_of({"task": {f"k{i}": None for i in range(MAX_ITEMS + 1)}}) == "items"
    assert limit_of({"content": "x" * MAX_CHARS, "name": "xy"}) == "size"
    assert limit_of({"content": ["x" * (MAX_CHARS // 2)] * 3}) == "size"


def test_the_check_stops_at_the_bound_however_large_the_call() -> None:
    nested: list[object] = []
    for _ in range(200_000):  # 200,000 deep: no recursion, stops at the first level past items
        nested = [nested, 1, 2, 3, 4, 5, 6]
    huge = {"task": [nested] * 10, "name": ["y" * 1000] * 100_000}
    started = time.perf_counter()
    assert limit_of(huge) == "items"
    assert time.perf_counter() - started < 0.5


async def test_a_call_past_a_bound_is_refused_on_the_wire_and_ledgered_once(
    state_dir: Path, config: Config
) -> None:
    async with memory_client(state_dir, config) as client:
        arguments = {"task": "T1"} | {f"x{i}": i for i in range(50_000)}
        error = refusal(await client.call_tool("task_status", arguments), "INVALID_ARGUMENT")
        assert error["details"]["limit"] == "keys"
        # An integer with more digits than Python will print still gets a refusal.
        big = {"task": "T1", "ttl_s": 10**5000}
        refusal(await client.call_tool("lease_acquire", big), "INVALID_ARGUMENT")
    rejected = [e for e in ledger_rows(state_dir) if e["type"] == "tool.rejected"]
    assert [e["data"]["code"] for e in rejected] == ["INVALID_ARGUMENT", "INVALID_ARGUMENT"]
