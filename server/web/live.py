"""Live updates: one poller of the ledger's head per process, fanned out as server-sent events.

The ledger is the source of truth and only grows, so "something changed" is "the head seq
moved". One task polls ``max(seq)`` (a step down the primary key) every 250 ms while at least one
browser listens, and tells every listener the new head and which tasks the new entries are about;
a page refetches its live region when it cares (the board always, a timeline for its own task).
Writers in other processes (stdio servers, the CLI) are seen the same way, since they share the
database file.

    watch = LedgerWatch(enforcer.ledger)
    async for change in watch.changes(after=-1):   # {"seq": 41, "tasks": ["T1"]}
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from enforcer.ledger.log import Ledger

__all__ = ["POLL_S", "LedgerWatch", "sse_response"]

logger = logging.getLogger(__name__)

POLL_S = 0.25
_KEEPALIVE_S = 15


class LedgerWatch:
    """Polls the ledger head while anyone listens; each listener gets every change in order."""

    def __init__(self, ledger: Ledger, poll_s: float = POLL_S) -> None:
        self.ledger = ledger
        self.poll_s = poll_s
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self.head = -2  # not read yet

    async def _poll(self) -> None:
        try:
            self.head = await self.ledger.head()
            while self._listeners:
                await asyncio.sleep(self.poll_s)
                head = await self.ledger.head()
                if head == self.head:
                    continue
                tasks = await self.ledger.tasks_since(self.head)
                change = {"seq": head, "tasks": tasks}
                self.head = head
                for queue in self._listeners:
                    if queue.qsize() < 64:  # a stalled browser refetches once anyway
                        queue.put_nowait(change)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the ledger watch stopped; listeners will reconnect")
            for queue in self._listeners:
                queue.put_nowait({"error": "watch stopped"})
        finally:
            self._task = None

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.add(queue)
        if self._task is None:
            self._task = asyncio.create_task(self._poll())
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
            if not self._listeners and self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def changes(self, after: int) -> AsyncIterator[dict[str, Any]]:
        """The changes after head `after` (the page's own head): one at once if it is behind."""
        async with self.listen() as queue:
            head = await self.ledger.head()
            if head != after:
                yield {"seq": head, "tasks": None}  # None: everything may have changed
            while True:
                change = await queue.get()
                if "error" in change:
                    return
                yield change


def sse_response(watch: LedgerWatch, after: int) -> Any:
    """An EventSourceResponse streaming `watch`'s changes as ``event: ledger`` messages."""
    from sse_starlette import EventSourceResponse, ServerSentEvent

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for change in watch.changes(after):
            yield ServerSentEvent(data=json.dumps(change), event="ledger", id=str(change["seq"]))

    return EventSourceResponse(events(), ping=_KEEPALIVE_S, headers={"Cache-Control": "no-store"})
