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
from pathlib import Path
from typing import Any

__all__ = ["GLOBAL_JOURNAL", "Journal"]

logger = logging.getLogger(__name__)

GLOBAL_JOURNAL = "_calls"


class Journal:
    def __init__(self, evidence_dir: Path) -> None:
        self.evidence_dir = evidence_dir
        self._made: set[str] = set()
        self._warned = False

    def path(self, task: str | None) -> Path:
        return self.evidence_dir / (task or GLOBAL_JOURNAL) / "journal.jsonl"

    def write(self, task: str | None, line: dict[str, Any]) -> None:
        """Append one line; a journal that cannot be written is logged once, never raised."""
        path = self.path(task)
        data = (json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n").encode()
        try:
            key = str(path.parent)
            if key not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(key)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            if not self._warned:
                logger.error("cannot write the call journal %s: %s", path, e)
                self._warned = True
