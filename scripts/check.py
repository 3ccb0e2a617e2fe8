"""Every check CI runs, in one place: lint, types, the whole test suite, then the integrity
script over a state directory that `phasegate demo` fills.

Run from the repository root: ``python scripts/check.py``. Exits non-zero on the first failure;
pytest's "no tests collected" (exit 5) is a failure too.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

_DEMO = Path(tempfile.mkdtemp(prefix="phasegate-ci-")) / "state"
STEPS: list[tuple[str, list[str]]] = [
    ("ruff", [sys.executable, "-m", "ruff", "check", "."]),
    ("ruff format", [sys.executable, "-m", "ruff", "format", "--check", "."]),
    ("mypy", [sys.executable, "-m", "mypy"]),
    ("pytest", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]),
    ("demo", [sys.executable, "-m", "server.cli", "demo", "--state-dir", str(_DEMO)]),
    ("integrity", [sys.executable, "scripts/integrity.py", "--state-dir", str(_DEMO)]),
    ("export", [sys.executable, "-m", "server.cli", "export", "--state-dir", str(_DEMO),
                "--out", str(_DEMO.parent / "export")]),
    ("export verify", [sys.executable, "-m", "server.cli", "export", "verify",
                       str(_DEMO.parent / "export"), "--public-key",
                       str(_DEMO / "keys" / "ed25519.pub")]),
]  # fmt: skip


def main() -> int:
    for name, argv in STEPS:
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        code = subprocess.call(argv)
        if code != 0:
            why = "no tests were collected" if name == "pytest" and code == 5 else f"exit {code}"
            print(f"== {name} FAILED ({why})", flush=True)
            return code or 1
    print("== all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
