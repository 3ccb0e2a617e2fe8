"""The stdio transport on the event loop's pipes (server/stdio.py), driven over real pipes.

A small MCP server runs as a subprocess through `run_stdio`; these tests speak raw JSON-RPC
lines to it, so they see exactly what is on the wire: stray output and a child process's output
miss the protocol, a line past the limit is dropped without ending the session, a request split
across writes is read whole, the descriptors are given back when serving ends, and a stdin that
asyncio cannot watch falls back to the SDK's transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from server_kit import REPO

SERVER = textwrap.dedent(
    """
    import logging, os, subprocess, sys
    from mcp.server.mcpserver import MCPServer
    from server.stdio import run_stdio

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = MCPServer(name="probe")

    def shout(word: str) -> str:
        print("stray print", word)  # must not reach the protocol
        subprocess.run([sys.executable, "-c", "print('child output')"], check=True)
        return word.upper()

    server.add_tool(shout, name="shout", description="echo loudly")
    run_stdio(server, max_line=int(sys.argv[1]))
    # Serving is over: the descriptors are the process's own again, blocking as before.
    print("after serving, blocking=%s" % os.get_blocking(1), flush=True)
    """
)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(request_id: int, word: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "shout", "arguments": {"word": word}},
    }


def line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()


async def converse(
    tmp_path: Path, max_line: int, requests: list[bytes], answers: set[int]
) -> tuple[dict[int, Any], list[str], bytes]:
    """Send `requests` on a pipe, wait for the responses with ids `answers` (the SDK fails what
    is still in flight when stdin ends), then close stdin and collect everything."""
    script = tmp_path / "probe_server.py"
    script.write_text(SERVER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(max_line),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    by_id: dict[int, Any] = {}
    other: list[str] = []

    async def read_until_answered() -> None:
        assert proc.stdout is not None
        while not answers <= set(by_id):
            raw = await proc.stdout.readline()
            assert raw, "the server closed stdout before answering"
            take(raw.decode(), by_id, other)

    try:
        proc.stdin.write(b"".join(requests))
        await proc.stdin.drain()
        await asyncio.wait_for(read_until_answered(), timeout=60)
        proc.stdin.close()
        rest, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    for raw in rest.decode().splitlines():
        take(raw, by_id, other)
    assert proc.returncode == 0, err.decode()
    return by_id, other, err


def take(raw: str, by_id: dict[int, Any], other: list[str]) -> None:
    """File a stdout line: a JSON-RPC response by its id, anything else as it is."""
    try:
        message = json.loads(raw)
    except ValueError:
        other.append(raw.rstrip("\n"))
        return
    by_id[message["id"]] = message


def text_of(response: dict[str, Any]) -> str:
    return str(response["result"]["content"][0]["text"])


async def test_stray_and_child_output_miss_the_wire_and_the_descriptors_come_back(
    tmp_path: Path,
) -> None:
    requests = [line(INITIALIZE), line(INITIALIZED), line(call(2, "one")), line(call(3, "two"))]
    by_id, other, err = await converse(tmp_path, 1 << 20, requests, {1, 2, 3})
    assert by_id[1]["result"]["serverInfo"]["name"] == "probe"
    assert text_of(by_id[2]) == "ONE" and text_of(by_id[3]) == "TWO"
    # Only protocol lines while serving; after it, stdout is the process's own again.
    assert other == ["after serving, blocking=True"]
    assert b"stray print one" in err and b"child output" in err
    assert b"serving on the event loop's pipes" in err


async def test_a_line_past_the_limit_is_dropped_and_the_session_goes_on(tmp_path: Path) -> None:
    huge = line(call(2, "x" * 20_000))
    requests = [line(INITIALIZE), line(INITIALIZED), huge, line(call(3, "after"))]
    by_id, _, err = await converse(tmp_path, 4096, requests, {1, 3})
    assert 2 not in by_id  # dropped, as the SDK drops a line it cannot parse
    assert text_of(by_id[3]) == "AFTER"
    assert b"dropped a stdin line longer than 4096 bytes" in err


async def test_a_request_split_across_writes_is_read_whole(tmp_path: Path) -> None:
    request = line(call(2, "split"))
    requests = [line(INITIALIZE), line(INITIALIZED), request[:7], request[7:]]
    by_id, _, _ = await converse(tmp_path, 1 << 20, requests, {1, 2})
    assert text_of(by_id[2]) == "SPLIT"


def test_a_regular_file_on_stdin_is_served_by_the_sdk_transport(tmp_path: Path) -> None:
    """asyncio cannot watch a regular file: the SDK's threaded transport reads it instead.
    (At the file's end the SDK closes the session, so only the handshake is certain.)"""
    script = tmp_path / "probe_server.py"
    script.write_text(SERVER)
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(line(INITIALIZE) + line(INITIALIZED))
    with requests.open("rb") as stdin:
        done = subprocess.run(
            [sys.executable, str(script), str(1 << 20)],
            cwd=REPO,
            stdin=stdin,
            capture_output=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert done.returncode == 0, done.stderr.decode()
    by_id: dict[int, Any] = {}
    other: list[str] = []
    for raw in done.stdout.decode().splitlines():
        take(raw, by_id, other)
    assert by_id[1]["result"]["serverInfo"]["name"] == "probe"
    assert other == ["after serving, blocking=True"]
    assert b"serving on the SDK's transport" in done.stderr


def test_a_character_device_on_stdin_is_left_to_the_sdk_transport(tmp_path: Path) -> None:
    """A terminal (here /dev/null, also a character device) is not made non-blocking."""
    script = tmp_path / "probe_server.py"
    script.write_text(SERVER)
    with open(os.devnull, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, str(script), str(1 << 20)],
            cwd=REPO,
            stdin=stdin,
            capture_output=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["after serving, blocking=True"]
    assert b"serving on the SDK's transport" in done.stderr
