"""The evidence journal: one JSON line per routed tool call, allowed or refused.

Lines go to ``state/evidence/<TASK>/journal.jsonl`` for calls on an existing task and to
``state/evidence/_calls/journal.jsonl`` otherwise (``_calls`` can never be a task id). Each line
is written with one ``write`` on an ``O_APPEND`` descriptor, so lines from several processes
never interleave.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["GLOBAL_JOURNAL", "Journal"]

logger = logging.getLogger(__name__)

GLOBAL_JOURNAL = "_calls"
_LINE = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # built once, not per line


class Journal:
    """Keeps up to `max_open` descriptors open (least recently used closed first), so a call
    costs one `write`, not an open/write/close."""

    def __init__(self, evidence_dir: Path, max_open: int = 64) -> None:
        self.evidence_dir = evidence_dir
        self.max_open = max_open
        self._fds: OrderedDict[str, int] = OrderedDict()  # by task (or GLOBAL_JOURNAL)
        self._warned = False

    def _fd(self, key: str) -> int:
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        path = self.evidence_dir / key / "journal.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fds[key] = fd
        while len(self._fds) > self.max_open:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.popitem()[1])

    def path(self, task: str | None) -> Path:
        return self.evidence_dir / (task or GLOBAL_JOURNAL) / "journal.jsonl"

    def write(self, task: str | None, line: dict[str, Any]) -> None:
        """Append one line; a journal that cannot be written is logged once, never raised."""
        data = (_LINE.encode(line) + "\n").encode()
        try:
            os.write(self._fd(task or GLOBAL_JOURNAL), data)
        except OSError as e:
            if not self._warned:
                logger.error("cannot write the call journal %s: %s", self.path(task), e)
                self._warned = True
