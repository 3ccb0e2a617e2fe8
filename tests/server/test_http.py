"""Streamable HTTP: `phasegate serve --http` as a real subprocess with bearer tokens from
phasegate.toml. No token is a 401 before any tool runs; the token decides actor and role; the
server listens on loopback unless told otherwise."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from server_kit import http_serving, ok, refusal, toml_text

VIEWER_TOKEN = "viewer-token-0123456789"
OPERATOR_TOKEN = "operator-token-9876543210"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _listen_addresses(port: int) -> set[str]:
    """The local addresses of sockets in LISTEN state on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


@pytest.fixture
def http_server(tmp_path: Path, sample_project: Path) -> Iterator[str]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "phasegate.toml").write_text(
        toml_text(
            sample_project,
            f'[actors.viewer1]\nrole = "viewer"\ntoken_sha256 = "{_sha(VIEWER_TOKEN)}"\n'
            f'[actors.op1]\nrole = "operator"\ntoken_sha256 = "{_sha(OPERATOR_TOKEN)}"\n',
        )
    )
    with http_serving(state_dir, tmp_path / "http.log") as url:
        yield url


@contextlib.asynccontextmanager
async def http_session(url: str, token: str, **headers: str) -> AsyncIterator[ClientSession]:
    auth = {"Authorization": f"Bearer {token}", **headers}
    async with (
        create_mcp_http_client(headers=auth) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_a_request_without_a_valid_bearer_token_is_401(http_server: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with httpx2.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": VIEWER_TOKEN}):
            response = await http.post(http_server, json=body, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_viewer_token_may_read_but_not_call_operator_tools(http_server: str) -> None:
    async with http_session(http_server, VIEWER_TOKEN) as viewer:
        error = refusal(await viewer.call_tool("task_start", {"title": "no"}), "FORBIDDEN")
        assert error["details"] == {"role": "viewer", "required": "operator"}
        assert ok(await viewer.call_tool("task_list", {})) == {"tasks": []}
        assert ok(await viewer.call_tool("controls_status", {}))["frozen"] is False


async def test_an_operator_token_works_and_the_holder_is_its_actor(http_server: str) -> None:
    async with http_session(http_server, OPERATOR_TOKEN, **{"x-phasegate-instance": "ci-7"}) as op:
        status = ok(await op.call_tool("task_start", {"title": "over http", "task": "H1"}))
        assert status["lease"]["holder"] == "op1/ci-7"
        assert status["created_by"] == "op1"
    async with http_session(http_server, VIEWER_TOKEN) as viewer:
        tasks = ok(await viewer.call_tool("task_list", {}))["tasks"]
        assert [(t["task"], t["holder"]) for t in tasks] == [("H1", "op1/ci-7")]
    async with http_session(http_server, OPERATOR_TOKEN) as other_instance:
        put = {"task": "H1", "name": "notes.md", "content": "x"}
        error = refusal(await other_instance.call_tool("evidence_put", put), "LEASE_HELD")
        assert error["details"]["holder"] == "op1/ci-7"


def test_the_http_server_listens_on_loopback_only(http_server: str) -> None:
    port = int(http_server.rsplit(":", 1)[1].split("/")[0])
    assert _listen_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else


async def test_a_body_over_the_http_cap_is_413_and_the_server_keeps_serving(
    http_server: str,
) -> None:
    huge = {"task": "H2", "name": "n.md", "content": "a" * (5 * 1024 * 1024)}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    headers = {
        "Authorization": f"Bearer {OPERATOR_TOKEN}",
        "Accept": "application/json, text/event-stream",
    }
    async with httpx2.AsyncClient() as http:
        params = {"name": "evidence_put", "arguments": huge}
        response = await http.post(http_server, json=call | {"params": params}, headers=headers)
        assert response.status_code == 413
    async with http_session(http_server, OPERATOR_TOKEN) as op:
        ok(await op.call_tool("task_start", {"title": "after", "task": "H2"}))
        with pytest.raises(MCPError):
            await op.call_tool("evidence_put", huge)
        assert ok(await op.call_tool("evidence_list", {"task": "H2"})) == {"evidence": []}


def test_connections_the_server_accepts_send_without_waiting_for_acks() -> None:
    """TCP_NODELAY on every accepted connection: otherwise each answer on a kept-alive
    connection waits out the client's delayed ACK (tens of milliseconds per call)."""
    import socket

    from server.http import listen

    with (
        listen("127.0.0.1", 0) as server,
        socket.create_connection(server.getsockname()[:2]),
    ):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
