"""The policy tests build on the governed-module kit (tests/enforcer/modules/modules_kit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_MODULES = Path(__file__).resolve().parents[1] / "modules"
if str(_MODULES) not in sys.path:
    sys.path.insert(0, str(_MODULES))
