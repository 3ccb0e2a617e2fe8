"""Every check CI runs, in one place: lint, types, the whole test suite under coverage (every
Python process it starts included), the coverage gate, the CI-sized mutation run, then the
integrity script over a state directory that `phasegate demo` fills.

Run from the repository root: ``python scripts/check.py``. Exits non-zero on the first failure;
pytest's "no tests collected" (exit 5) is a failure too, and so is a total coverage below
``fail_under`` in pyproject.toml. The coverage step prints the total (lines and branches) and the
least-covered modules; ``python -m coverage report`` shows every module afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_DEMO = Path(tempfile.mkdtemp(prefix="phasegate-ci-")) / "state"
_JSON = _DEMO.parent / "coverage.json"
LEAST = 12  # least-covered modules printed

Step = tuple[str, list[str] | Callable[[], int]]


def _coverage(*args: str) -> list[str]:
    return [sys.executable, "-m", "coverage", *args]


def coverage_gate() -> int:
    """Print the combined figures and the least-covered modules; fail below `fail_under`."""
    done = subprocess.run(_coverage("json", "-q", "-o", str(_JSON)), cwd=REPO)
    if done.returncode != 0:
        return done.returncode
    data = json.loads(_JSON.read_text())
    gate = float(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["coverage"]["report"][
            "fail_under"
        ]
    )
    totals = data["totals"]

    def figures(t: dict[str, float]) -> str:
        lines = 100.0 * t["covered_lines"] / max(1, t["num_statements"])
        branches = 100.0 * t["covered_branches"] / max(1, t["num_branches"])
        return (
            f"lines {lines:5.1f} %  branches {branches:5.1f} %  total {t['percent_covered']:5.1f} %"
        )

    print(f"coverage (suite and its subprocesses): {figures(totals)}")
    print(f"least covered of {len(data['files'])} modules:")
    ranked = sorted(data["files"].items(), key=lambda kv: kv[1]["summary"]["percent_covered"])
    for path, f in ranked[:LEAST]:
        print(f"  {path:40} {figures(f['summary'])}")
    total = float(totals["percent_covered"])
    if total < gate:
        print(f"coverage gate: {total:.1f} % is below fail_under = {gate:.1f} %")
        return 2
    print(f"coverage gate: {total:.1f} % >= fail_under = {gate:.1f} %")
    return 0


def mutation_report() -> int:
    """The CI-sized mutation run (`scripts/mutation.py --set ci`), its figures printed per
    module; a surviving mutant that is not declared equivalent fails CI. The full run over
    every security-critical module is `python scripts/mutation.py` (README: Tests that catch
    the bug)."""
    return subprocess.call([sys.executable, "scripts/mutation.py", "--set", "ci"], cwd=REPO)


STEPS: list[Step] = [
    ("ruff", [sys.executable, "-m", "ruff", "check", "."]),
    ("ruff format", [sys.executable, "-m", "ruff", "format", "--check", "."]),
    ("mypy", [sys.executable, "-m", "mypy"]),
    ("coverage erase", _coverage("erase")),
    ("pytest", _coverage("run", "-m", "pytest", "-q", "-p", "no:cacheprovider")),
    ("coverage combine", _coverage("combine", "-q")),
    ("coverage gate", coverage_gate),
    ("mutation", mutation_report),
    ("demo", [sys.executable, "-m", "server.cli", "demo", "--state-dir", str(_DEMO)]),
    ("integrity", [sys.executable, "scripts/integrity.py", "--state-dir", str(_DEMO)]),
    ("export", [sys.executable, "-m", "server.cli", "export", "--state-dir", str(_DEMO),
                "--out", str(_DEMO.parent / "export")]),
    ("export verify", [sys.executable, "-m", "server.cli", "export", "verify",
                       str(_DEMO.parent / "export"), "--public-key",
                       str(_DEMO / "keys" / "ed25519.pub")]),
]  # fmt: skip


def main() -> int:
    started = time.monotonic()
    for name, step in STEPS:
        began = time.monotonic()
        shown = step.__name__ if callable(step) else " ".join(step[1:])
        print(f"== {name}: {shown}", flush=True)
        code = step() if callable(step) else subprocess.call(step, cwd=REPO)
        print(f"== {name}: {time.monotonic() - began:.0f} s", flush=True)
        if code != 0:
            why = "no tests were collected" if name == "pytest" and code == 5 else f"exit {code}"
            print(f"== {name} FAILED ({why})", flush=True)
            return code or 1
    print(f"== all checks passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
