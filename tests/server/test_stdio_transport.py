"""The stdio transport on the event loop's pipes (server/stdio.py), driven over real pipes.

A small MCP server runs as a subprocess through `run_stdio`; these tests speak raw JSON-RPC
lines to it, so they see exactly what is on the wire: stray output and a child process's output
miss the protocol, a line past the limit is refused without ending the session, a request split
across writes is read whole, an answer larger than the pipe is delivered whole to a slow reader
even when stdin ends meanwhile, socket pairs work (Node gives its children those), the
descriptors are given back when serving ends, a terminal is served but never made
non-blocking, and what the loop should not watch (a regular file, a device that is no
terminal, one socket for both directions) is left to the SDK's transport. The real
`phasegate serve` ends a session on SIGTERM, and in a terminal on Ctrl-C, as on the end of
stdin, with its final checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from server_kit import REPO, cli, ledger_rows, serve_args

SERVER = textwrap.dedent(
    """
    import logging, os, subprocess, sys
    from mcp.server.mcpserver import MCPServer
    from server.stdio import run_stdio

    import asyncio, contextlib

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield {}
        if "slow-exit" in sys.argv:  # a shutdown that takes a minute
            print("slow shutdown started", file=sys.stderr, flush=True)
            await asyncio.sleep(60)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = MCPServer(name="probe", lifespan=lifespan)

    def shout(word: str) -> str:
        print("stray print", word)  # must not reach the protocol
        subprocess.run([sys.executable, "-c", "print('child output')"], check=True)
        return word.upper()

    def big(n: int) -> str:
        return "x" * n

    async def slow(seconds: float) -> str:
        print("slow call started", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        return "slept"

    def terminal_blocking() -> str:
        return str(os.get_blocking(2))  # on a terminal, fd 2 shares the open file with 0 and 1

    server.add_tool(shout, name="shout", description="echo loudly")
    server.add_tool(big, name="big", description="a long answer")
    server.add_tool(slow, name="slow", description="sleeps")
    server.add_tool(terminal_blocking, name="terminal_blocking", description="fd 2 blocking?")
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


def call(request_id: int, word: str, tool: str = "shout", **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {"word": word}},
    }


def line(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()


def probe_argv(tmp_path: Path, max_line: int = 1 << 20, *extra: str) -> list[str]:
    script = tmp_path / "probe_server.py"
    script.write_text(SERVER)
    return [sys.executable, str(script), str(max_line), *extra]


PROBE_ENV = {**os.environ, "PYTHONPATH": str(REPO)}


async def _stderr_line(proc: asyncio.subprocess.Process, marker: bytes) -> None:
    """Read the probe's stderr until a line holds `marker` (bounded: 30 s)."""
    assert proc.stderr is not None

    async def scan() -> None:
        assert proc.stderr is not None
        while marker not in (got := await proc.stderr.readline()):
            assert got, f"stderr ended before {marker!r}"

    await asyncio.wait_for(scan(), timeout=30)


async def start_probe(
    tmp_path: Path, max_line: int = 1 << 20, *extra: str
) -> asyncio.subprocess.Process:
    """The probe server on pipes (stdin, stdout and stderr)."""
    return await asyncio.create_subprocess_exec(
        *probe_argv(tmp_path, max_line, *extra),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=PROBE_ENV,
    )


def run_probe(tmp_path: Path, stdin: Any) -> subprocess.CompletedProcess[bytes]:
    """The probe server to the end of `stdin` (a file), its output collected."""
    return subprocess.run(
        probe_argv(tmp_path), cwd=REPO, stdin=stdin, capture_output=True, timeout=60, env=PROBE_ENV
    )


async def converse(
    tmp_path: Path, max_line: int, requests: list[bytes], answers: set[int]
) -> tuple[dict[int, Any], list[str], bytes]:
    """Send `requests` on a pipe, wait for the responses with ids `answers` (the SDK fails what
    is still in flight when stdin ends), then close stdin and collect everything."""
    proc = await start_probe(tmp_path, max_line)
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
    # The two calls run at once (the tool is sync: worker threads), so their prints may
    # interleave on stderr; each reached it.
    assert err.count(b"stray print") == 2 and b"one" in err and b"two" in err
    assert err.count(b"child output") == 2
    assert b"serving on the event loop's pipes" in err


async def test_a_line_past_the_limit_is_refused_for_its_id_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    huge = line(call(2, "x" * 20_000))
    requests = [line(INITIALIZE), line(INITIALIZED), huge, line(call(3, "after"))]
    by_id, _, err = await converse(tmp_path, 4096, requests, {1, 2, 3})
    assert by_id[2]["error"]["code"] == -32600  # not read: only its first bytes, for the id
    assert "4096" in by_id[2]["error"]["message"]
    assert text_of(by_id[3]) == "AFTER"
    assert b"refused a stdin line longer than 4096 bytes" in err


async def test_a_request_split_across_writes_is_read_whole(tmp_path: Path) -> None:
    request = line(call(2, "split"))
    requests = [line(INITIALIZE), line(INITIALIZED), request[:7], request[7:]]
    by_id, _, _ = await converse(tmp_path, 1 << 20, requests, {1, 2})
    assert text_of(by_id[2]) == "SPLIT"


def test_a_regular_file_on_stdin_is_served_by_the_sdk_transport(tmp_path: Path) -> None:
    """asyncio cannot watch a regular file: the SDK's threaded transport reads it instead.
    (At the file's end the SDK closes the session, so only the handshake is certain.)"""
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(line(INITIALIZE) + line(INITIALIZED))
    with requests.open("rb") as stdin:
        done = run_probe(tmp_path, stdin)
    assert done.returncode == 0, done.stderr.decode()
    by_id: dict[int, Any] = {}
    other: list[str] = []
    for raw in done.stdout.decode().splitlines():
        take(raw, by_id, other)
    assert by_id[1]["result"]["serverInfo"]["name"] == "probe"
    assert other == ["after serving, blocking=True"]
    assert b"serving on the SDK's transport" in done.stderr


def test_a_device_that_is_no_terminal_is_left_to_the_sdk_transport(tmp_path: Path) -> None:
    """/dev/null: a character device, but no terminal and never readable input: the SDK's."""
    with open(os.devnull, "rb") as stdin:
        done = run_probe(tmp_path, stdin)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["after serving, blocking=True"]
    assert b"serving on the SDK's transport" in done.stderr


async def test_an_answer_larger_than_the_pipe_reaches_a_slow_reader_whole(tmp_path: Path) -> None:
    """The client reads nothing until stdin has ended: every answer must still arrive whole."""
    proc = await start_probe(tmp_path)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(line(INITIALIZE) + line(INITIALIZED))
        proc.stdin.write(line(call(2, "", "big", n=300_000)))
        await proc.stdin.drain()
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=60))
        assert first["id"] == 1
        # The first bytes of the answer have arrived, so the server is writing it; what it can
        # have written beyond them (this reader's buffer, paused at 128 KiB, and the 64 KiB
        # pipe) is less than the 300 KB answer: the write is blocked on the full pipe when
        # stdin ends.
        head = await asyncio.wait_for(proc.stdout.readexactly(4096), timeout=60)
        proc.stdin.close()

        async def read_slowly() -> bytes:
            assert proc.stdout is not None
            got = b""
            while chunk := await proc.stdout.read(4096):
                got += chunk
                await asyncio.sleep(0.005)  # a slow reader: the server may finish first
            return got

        rest = head + await asyncio.wait_for(read_slowly(), timeout=60)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    by_id: dict[int, Any] = {}
    other: list[str] = []
    for raw in rest.decode().splitlines():
        take(raw, by_id, other)
    assert text_of(by_id[2]) == "x" * 300_000
    assert other == ["after serving, blocking=True"]


def test_socket_pairs_are_served_on_the_loop_and_one_socket_for_both_by_the_sdk(
    tmp_path: Path,
) -> None:
    argv = probe_argv(tmp_path)
    env = PROBE_ENV
    requests = line(INITIALIZE) + line(INITIALIZED) + line(call(2, "sock"))

    def answers(ours_out: socket.socket) -> dict[int, Any]:
        by_id: dict[int, Any] = {}
        buffered = b""
        while 2 not in by_id:
            chunk = ours_out.recv(65536)
            assert chunk, "the server closed the socket before answering"
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for raw in lines:
                take(raw.decode(), by_id, [])
        return by_id

    def serve(
        stdin: socket.socket, stdout: socket.socket, send: socket.socket, receive: socket.socket
    ) -> bytes:
        """One session: the server gets `stdin`/`stdout`, we speak on `send`/`receive`."""
        send.settimeout(60)
        receive.settimeout(60)
        with subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE
        ) as proc:
            stdin.close()
            stdout.close()
            send.sendall(requests)
            assert text_of(answers(receive)[2]) == "SOCK"
            send.shutdown(socket.SHUT_WR)
            assert proc.stderr is not None
            err = proc.stderr.read()
            assert proc.wait(timeout=60) == 0, err.decode()
        send.close()
        receive.close()
        return err

    # Two socket pairs, one per direction, as Node's child_process sets up.
    in_ours, in_theirs = socket.socketpair()
    out_ours, out_theirs = socket.socketpair()
    assert b"serving on the event loop's pipes" in serve(in_theirs, out_theirs, in_ours, out_ours)

    # One socket for both directions (inetd, socat): the SDK's transport serves it.
    ours, theirs = socket.socketpair()
    assert b"serving on the SDK's transport" in serve(theirs, theirs, ours, ours)


async def test_sigterm_ends_a_phasegate_session_like_the_end_of_stdin(tmp_path: Path) -> None:
    """The lifespan closes in order: a final checkpoint covers every entry, and it verifies."""
    state = tmp_path / "state"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *serve_args(state, "term"),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    start = {"title": "terminated", "task": "SIG-1"}
    try:
        proc.stdin.write(line(INITIALIZE) + line(INITIALIZED))
        proc.stdin.write(line(call(2, "", "task_start", **start)))
        await proc.stdin.drain()
        by_id: dict[int, Any] = {}
        while 2 not in by_id:
            raw = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert raw, "the server closed stdout before answering"
            take(raw.decode(), by_id, [])
        assert by_id[2]["result"]["structuredContent"]["phase"] == "STRATEGIZE"
        proc.send_signal(signal.SIGTERM)  # stdin stays open: only the signal ends the session
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    entries = len(ledger_rows(state))
    assert (state / "checkpoints" / f"{entries:012d}.txt").is_file(), sorted(
        p.name for p in (state / "checkpoints").iterdir()
    )
    verified = cli("ledger", "verify", "--state-dir", str(state), "--json")
    assert json.loads(verified.stdout)["ok"] is True


def test_a_terminal_is_served_and_ctrl_c_ends_the_session_in_order(tmp_path: Path) -> None:
    """`phasegate serve` typed in a terminal: requests are answered, the terminal stays
    blocking while served (fd 2 shares its open file with fd 0 and 1), and Ctrl-C ends the
    session with its final checkpoint (the SDK's threaded transport would wait for another
    line before it let go)."""
    import pty
    import select
    import time

    state = tmp_path / "state"
    pid, master = pty.fork()
    if pid == 0:  # the child: the server, on the terminal
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, *serve_args(state, "typist")])
    seen = b""

    def read_for(seconds: float, until: bytes | None = None) -> None:
        nonlocal seen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (until is None or until not in seen):
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the child has gone
                    return

    try:
        read_for(30, until=b"serving on")
        start = call(2, "", "task_start", title="typed", task="TTY-1")
        for message in (INITIALIZE, INITIALIZED, start):
            os.write(master, line(message))
        read_for(30, until=b'"id":2')
        assert b'"phase":"STRATEGIZE"' in seen, seen.decode(errors="replace")
        os.write(master, b"\x03")  # Ctrl-C
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "the server did not end on Ctrl-C"
            read_for(0.1)
        assert os.waitstatus_to_exitcode(done[1]) == 0, seen.decode(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    assert b"serving on the event loop's pipes" in seen
    entries = len(ledger_rows(state))
    assert (state / "checkpoints" / f"{entries:012d}.txt").is_file()


def test_a_terminal_is_never_made_non_blocking(tmp_path: Path) -> None:
    import pty
    import select
    import time

    argv = probe_argv(tmp_path)
    pid, master = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(argv[0], argv, PROBE_ENV)
    seen = b""
    try:
        for message in (INITIALIZE, INITIALIZED, call(2, "", "terminal_blocking")):
            os.write(master, line(message))
        deadline = time.monotonic() + 30
        while b'"id":2' not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                seen += os.read(master, 65536)
        assert b'"text":"True"' in seen, seen.decode(errors="replace")
        assert b"serving on the event loop's pipes" in seen
        os.write(master, b"\x04")  # Ctrl-D: the end of input
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


async def test_sigterm_stops_a_call_in_flight_and_a_second_one_a_slow_shutdown(
    tmp_path: Path,
) -> None:
    for slow_exit in (False, True):
        proc = await start_probe(tmp_path, 1 << 20, *(["slow-exit"] if slow_exit else []))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(line(INITIALIZE) + line(INITIALIZED))
            proc.stdin.write(line(call(2, "", "slow", seconds=60)))
            await proc.stdin.drain()
            answer = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert json.loads(answer)["id"] == 1
            await _stderr_line(proc, b"slow call started")  # the slow call is in flight
            proc.send_signal(signal.SIGTERM)  # ends the session; the call is cancelled
            if slow_exit:
                # The session has ended and the one-minute shutdown is under way ...
                await _stderr_line(proc, b"slow shutdown started")
                assert proc.returncode is None  # ... and takes its time ...
                proc.send_signal(signal.SIGTERM)  # ... unless a second signal says not to
            await asyncio.wait_for(proc.wait(), timeout=15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        # The second signal meets the handler from before serving (here the default).
        assert proc.returncode == (-signal.SIGTERM if slow_exit else 0)
