"""Where everything lives inside a state directory (DESIGN.md, state/).

paths = StatePaths(Path("state"))
paths.db            # state/phasegate.db
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StatePaths", "default_state_dir"]


def default_state_dir() -> Path:
    """``PHASEGATE_STATE_DIR`` if set, else ``./state``."""
    return Path(os.environ.get("PHASEGATE_STATE_DIR") or "state")


@dataclass(frozen=True, slots=True)
class StatePaths:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "phasegate.db"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def workspaces(self) -> Path:
        return self.root / "workspaces"

    @property
    def telemetry(self) -> Path:
        return self.root / "telemetry"
