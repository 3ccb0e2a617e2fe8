"""The shared test kits live beside the tests that first needed them (tests/enforcer,
tests/server); tests in the sub-folders that mirror the source tree import them by name."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for kit_dir in (
    _HERE / "enforcer",
    _HERE / "server",
    _HERE / "enforcer" / "modules",
    _HERE / "enforcer" / "policy",
):
    if str(kit_dir) not in sys.path:
        sys.path.insert(0, str(kit_dir))
