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
is written, as the SDK's blocking flush does. SIGTERM and Ctrl-C end the session as the end of
stdin does, so the lifespan closes in order (the SDK's transport, its reader thread blocked in
a read, would not end until more input came).

Every line is parsed as the SDK's transport parses it, but a request it cannot serve is
answered instead of dropped (``server/framing.py``): a JSON-RPC error for its id, so a client
never waits out its own timeout for a request that was never going to be served.

Two pipes or two sockets (Node gives its children socket pairs) are served on asyncio's pipe
transports; a terminal is watched by the loop but never made non-blocking. A regular file, one
socket for both directions, or Windows: the SDK's own transport.
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
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
from mcp.server.mcpserver import MCPServer
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage

from . import framing

__all__ = ["run_stdio"]

logger = logging.getLogger(__name__)

# One JSON-RPC message per line. Evidence is capped at 2 MiB (12 MiB as JSON if every
# character had to be escaped), so a line past this is garbage or an attack: it is not read,
# only its first bytes, for the request id its refusal answers.
MAX_LINE = 32 * 1024 * 1024
_PREFIX = 64 * 1024  # what is kept of an over-long line


class _TooLong:
    """A line past the limit: its first bytes only."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix


class _Lines:
    """stdin as the async iterator of its lines (bytes), or `_TooLong` for one past the limit."""

    def __init__(self, reader: asyncio.StreamReader, max_line: int) -> None:
        self._reader = reader
        self.max_line = max_line

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> bytes | _TooLong:
        try:
            return await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as e:  # EOF: the last line may lack its newline
            if not e.partial:
                raise StopAsyncIteration from None
            return e.partial
        except asyncio.LimitOverrunError as e:
            prefix = await self._reader.readexactly(max(1, min(e.consumed, _PREFIX)))
            if not prefix.endswith(b"\n"):
                await self._skip_line()
            logger.warning("refused a stdin line longer than %d bytes", self.max_line)
            return _TooLong(prefix)

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


class _TerminalOut:
    """stdout on a terminal: plain blocking writes, which a terminal takes at once."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(self._fd, data) :]

    async def flush(self) -> None:
        return None


class _TerminalIn:
    """A terminal read by the loop without making it non-blocking: the descriptor is watched,
    and read only when it has input, so a read never waits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, reader: asyncio.StreamReader):
        self._loop, self._fd, self._reader = loop, fd, reader
        self._open = True
        loop.add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._reader.feed_data(data)
        else:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self._fd)
            self._reader.feed_eof()


_STREAM, _TERMINAL = "stream", "terminal"


def _plan() -> tuple[str, str] | None:
    """How the loop serves stdin and stdout, or None for the SDK's transport.

    Pipes and sockets (MCP clients give a server they spawn two of them; Node gives socket
    pairs) get asyncio's pipe transports. A terminal is watched but never made non-blocking: a
    killed server could not set it back for the shell. A regular file cannot be watched; one
    socket for both directions (inetd, socat) would look closed to asyncio's write side at the
    first incoming byte: both go to the SDK."""
    try:
        stdin, stdout = os.fstat(0), os.fstat(1)
    except OSError:
        return None

    def kind(fd: int, st: os.stat_result) -> str | None:
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            return _STREAM
        return _TERMINAL if os.isatty(fd) else None

    read, write = kind(0, stdin), kind(1, stdout)
    if read is None or write is None:
        return None
    if read == write == _STREAM and os.path.samestat(stdin, stdout):
        return None
    return read, write


@contextlib.asynccontextmanager
async def _loop_pipes(max_line: int) -> AsyncIterator[tuple[_Lines, _Out | _TerminalOut] | None]:
    """The protocol's stdin and stdout on private descriptors, or None where that can't be."""
    plan = None if sys.platform == "win32" else _plan()
    if plan is None:
        yield None
        return
    import fcntl

    read_kind, write_kind = plan
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
    closers: list[Callable[[], None]] = []
    signals: list[tuple[signal.Signals, Any]] = []

    def restore_signals() -> None:
        while signals:
            signum, previous = signals.pop()
            loop.remove_signal_handler(signum)
            signal.signal(signum, previous)

    try:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, 0)
            os.dup2(2, 1)
        finally:
            os.close(null)
        reader = asyncio.StreamReader(limit=max_line)
        end_input: Callable[[], None]
        if read_kind == _STREAM:
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader),
                os.fdopen(os.dup(in_fd), "rb", buffering=0),  # the transport closes its own
            )
            end_input = read_transport.close
        else:
            end_input = _TerminalIn(loop, in_fd, reader).close
        closers.append(end_input)
        out: _Out | _TerminalOut
        if write_kind == _STREAM:
            write_transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
                os.fdopen(os.dup(out_fd), "wb", buffering=0),
            )
            closers.append(write_transport.close)
            # Flush means written, as the SDK's blocking flush does: drain() waits until the
            # buffer is empty, so nothing is left unsent when serving ends.
            write_transport.set_write_buffer_limits(high=0)
            out = _Out(asyncio.StreamWriter(write_transport, protocol, None, loop))
        else:
            out = _TerminalOut(out_fd)

        # SIGTERM, and Ctrl-C in a terminal, end the session as the end of stdin does: the
        # lifespan closes in order (final checkpoint), where a KeyboardInterrupt would cancel it
        # mid-way. The SDK lets calls in flight finish first; a second signal does not wait.
        def stop() -> None:
            end_input()
            restore_signals()

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signals.append((signum, signal.getsignal(signum)))
                loop.add_signal_handler(signum, stop)
        yield _Lines(reader, max_line), out
    finally:
        restore_signals()
        for close in closers:
            close()  # each transport closes its own duplicate; in_fd and out_fd stay ours
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
        async with _session_streams(stdin, stdout) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


@contextlib.asynccontextmanager
async def _session_streams(
    lines: _Lines, out: _Out | _TerminalOut
) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's ``stdio_server`` over our pipes (the same streams, parsing and writing), except
    that a line it cannot parse is answered for its request id here instead of dropped."""
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)

    async def send(text: str) -> None:
        # One write per line, so answers from the reader and the writer never interleave.
        await out.write(text + "\n")
        await out.flush()

    async def reader() -> None:
        try:
            async with read_writer:
                async for item in lines:
                    if isinstance(item, _TooLong):
                        answers = framing.too_long(item.prefix, lines.max_line)
                    else:
                        message = framing.read_message(item)
                        if not isinstance(message, list):
                            await read_writer.send(SessionMessage(message))
                            continue
                        answers = message
                    if not answers:
                        logger.warning("dropped a stdin line that is no request (no id to answer)")
                    for answer in answers:
                        await send(answer)
        except anyio.ClosedResourceError:  # the session ended first
            await anyio.lowlevel.checkpoint()

    async def writer() -> None:
        try:
            async with write_reader:
                async for session_message in write_reader:
                    message = session_message.message
                    await send(message.model_dump_json(by_alias=True, exclude_unset=True))
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        tg.start_soon(writer)
        yield read_stream, write_stream


def run_stdio(server: MCPServer[Any], *, max_line: int = MAX_LINE) -> None:
    """`server.run()` for stdio, on the loop's pipes (see the module docstring)."""
    anyio.run(lambda: serve_stdio(server, max_line=max_line))
