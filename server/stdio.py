"""stdio on the event loop's own pipes: no worker threads between the agent and the router.

The SDK's stdio transport reads stdin and writes stdout through anyio's file wrappers, which
run every ``readline``, ``write`` and ``flush`` on a worker thread. Each request then costs
three thread hops, and the reader thread, woken for the next line while a request is being
handled, competes with it for the GIL (every SQLite statement releases the GIL). Here the same
SDK transport (``stdio_server``, given explicit streams) runs on asyncio pipe transports
instead; on the development host that halves a bare round trip (``scripts/bench_server.py``
against ``--sdk-stdio``).

What the SDK does around its own streams is kept: while serving, fd 0 reads the null device
and fd 1 writes to stderr, so a stray ``print`` or a child process cannot corrupt the
protocol; both are restored on exit, blocking mode included. A flush returns once the answer
is written, as the SDK's blocking flush does. SIGTERM ends the session as the end of stdin
does, so the lifespan closes in order.

Two pipes or two sockets (Node gives its children socket pairs) are served here. A regular
file, a terminal, one socket for both directions, or Windows: the SDK's own transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

__all__ = ["run_stdio"]

logger = logging.getLogger(__name__)

# One JSON-RPC message per line. Evidence is capped at 2 MiB (12 MiB as JSON if every
# character had to be escaped), so a line past this is garbage or an attack. It is dropped,
# as the SDK drops a line it cannot parse: neither can answer a request it could not read.
MAX_LINE = 32 * 1024 * 1024


class _Lines:
    """stdin as the async iterator of text lines the SDK transport reads."""

    def __init__(self, reader: asyncio.StreamReader, max_line: int) -> None:
        self._reader = reader
        self._max_line = max_line

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:  # EOF: the last line may lack its newline
                if not e.partial:
                    raise StopAsyncIteration from None
                line = e.partial
            except asyncio.LimitOverrunError:
                await self._skip_line()
                logger.warning("dropped a stdin line longer than %d bytes", self._max_line)
                continue
            return line.decode("utf-8", "replace")

    async def _skip_line(self) -> None:
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as e:
                await self._reader.readexactly(e.consumed)
            except asyncio.IncompleteReadError:
                return


class _Out:
    """stdout as the text file the SDK transport writes to: write, then flush (drain)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


def _separate_pipes() -> bool:
    """Whether stdin and stdout are what MCP clients give a server they spawn: two pipes or two
    sockets (Node's child processes get socket pairs). A terminal is left to the SDK: the loop
    would make it non-blocking, and a killed server could not set it back for the shell. One
    socket for both (inetd, socat) too: asyncio's write side takes any incoming byte on it
    for the reader having gone away."""
    try:
        stdin, stdout = os.fstat(0), os.fstat(1)
    except OSError:
        return False
    kinds = (stat.S_ISFIFO, stat.S_ISSOCK)
    return (
        any(k(stdin.st_mode) for k in kinds)
        and any(k(stdout.st_mode) for k in kinds)
        and not os.path.samestat(stdin, stdout)
    )


@contextlib.asynccontextmanager
async def _loop_pipes(max_line: int) -> AsyncIterator[tuple[_Lines, _Out] | None]:
    """The protocol's stdin and stdout on private descriptors, or None where that can't be."""
    if sys.platform == "win32" or not _separate_pipes():
        yield None
        return
    import fcntl

    loop = asyncio.get_running_loop()
    if sys.stdout is not None:
        sys.stdout.flush()
    in_fd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        out_fd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        os.close(in_fd)
        raise
    # Non-blocking mode belongs to the open file, which other processes may share (the rest of
    # a shell pipeline): remember it and put it back.
    blocking = os.get_blocking(in_fd), os.get_blocking(out_fd)
    transports: list[asyncio.BaseTransport] = []
    handling_sigterm = False
    previous: Any = signal.SIG_DFL
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, 0)
            os.dup2(2, 1)
        finally:
            os.close(null)
        reader = asyncio.StreamReader(limit=max_line)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader),
            os.fdopen(os.dup(in_fd), "rb", buffering=0),  # the transport closes its own
        )
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(os.dup(out_fd), "wb", buffering=0),
        )
        transports.append(write_transport)
        # Flush means written, as the SDK's blocking flush does: drain() waits until the
        # buffer is empty, so nothing is left unsent when serving ends.
        write_transport.set_write_buffer_limits(high=0)
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        # SIGTERM ends the session as the end of stdin does: the lifespan closes in order
        # (final checkpoint), instead of a KeyboardInterrupt cancelling it mid-way.
        # (Closing the transport ends the stream after what was already read, and no more.)
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGTERM)
            loop.add_signal_handler(signal.SIGTERM, read_transport.close)
            handling_sigterm = True
        yield _Lines(reader, max_line), _Out(writer)
    finally:
        if handling_sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous)
        for transport in transports:
            transport.close()  # each closes its own duplicate; in_fd and out_fd stay ours
        for fd, was_blocking in zip((in_fd, out_fd), blocking, strict=True):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, was_blocking)
        for fd, std in ((in_fd, 0), (out_fd, 1)):
            with contextlib.suppress(OSError):
                os.dup2(fd, std)
            with contextlib.suppress(OSError):
                os.close(fd)


async def serve_stdio(server: MCPServer[Any], *, max_line: int = MAX_LINE) -> None:
    """Serve `server` on stdin/stdout until stdin ends."""
    # The SDK runs its stdio transport on the low-level server; MCPServer keeps that private
    # and offers no way to hand it other streams. Without it, the SDK's own path serves.
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:
        logger.info("stdio: serving on the SDK's transport")
        await server.run_stdio_async()
        return
    async with _loop_pipes(max_line) as pipes:
        if pipes is None:
            logger.info("stdio: serving on the SDK's transport")
            await server.run_stdio_async()
            return
        logger.info("stdio: serving on the event loop's pipes")
        stdin, stdout = pipes
        async with stdio_server(stdin, stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def run_stdio(server: MCPServer[Any], *, max_line: int = MAX_LINE) -> None:
    """`server.run()` for stdio, on the loop's pipes (see the module docstring)."""
    anyio.run(lambda: serve_stdio(server, max_line=max_line))
