"""The benchmark scripts run end to end, so the figures the README quotes stay reproducible.

Tiny counts, real subprocesses; no timing is asserted (figures come from full runs, never from
a test). A script may exit 1 when a tiny run misses a target; anything else is a failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "ledger": (
        ["bench_ledger.py", "--runs", "1", "--appends", "20", "--entries", "200"],
        ["--verify-runs", "1"],
        ["FULL ", "NORMAL ", "target 100,000 entries/s:"],
    ),
    "transition": (
        ["bench_transition.py", "--runs", "1", "--transitions", "20", "--tasks", "20"],
        ["--agents", "2", "--dir", "{tmp}"],
        ["latency:", "sustained:"],
    ),
    "telemetry": (
        ["bench_telemetry.py", "--runs", "2", "--iterations", "10", "--warmup", "2"],
        [],
        ["telemetry on :", "telemetry off:", "difference:"],
    ),
    "server, SDK client": (
        ["bench_server.py", "--runs", "1", "--calls", "20", "--advances", "5"],
        ["--warmup", "10", "--block", "5"],
        [
            "task_status over task_status_unrouted",
            "controls_status over noop",
            "task_status over noop (p50):",
            "client validation of task_status",
            "evidence_put p50",
            "phase_advance p50",
        ],
    ),
    "local agents": (
        ["bench_local_agents.py", "--agents", "1", "2", "--cycles", "5", "--runs", "1"],
        ["--dir", "{tmp}"],
        ["transitions/s", "2 processes:"],
    ),
    "sandbox": (
        ["bench_sandbox.py", "--runs", "2", "--files", "3"],
        [],
        ["sandbox overhead", "python -c pass", "true ", "bare "],
    ),
    "policy": (
        ["bench_policy.py", "--runs", "1", "--decisions", "5", "--files", "30"],
        [],
        ["policy decision on a 30-file diff", "decision: approval pending", "target p50"],
    ),
    "modules": (
        ["bench_modules.py", "--runs", "1", "--files", "20", "--file-kb", "2"],
        [],
        ["promote   p50", "install   p50", "rollback  p50", "sandbox overhead, 20-file tree"],
    ),
    "server, raw client": (
        ["bench_server.py", "--runs", "1", "--calls", "20", "--advances", "5"],
        ["--warmup", "10", "--block", "5", "--raw"],
        ["task_status over task_status_unrouted", "phase_advance p50"],
    ),
    "web page, headless chromium": (
        ["bench_web.py", "--runs", "1", "--tasks", "20", "--diff-lines", "200"],
        [],
        ["board  median of 1: first paint", "diff   median of 1: first paint"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_benchmark_script_runs_and_prints_its_summary(case: str, tmp_path: Path) -> None:
    head, tail, expected = CASES[case]
    if head[0] == "bench_web.py" and not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    argv = [sys.executable, str(ROOT / "scripts" / head[0]), *head[1:]]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in tail]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)
    for line in expected:
        assert line in done.stdout, (line, done.stdout)


@pytest.mark.timeout(300)
def test_the_scale_benchmark_runs_on_postgresql_and_sqlite(pg_server: str) -> None:
    argv = [sys.executable, str(ROOT / "scripts" / "bench_scale.py"), "--runs", "1"]
    argv += ["--transitions", "5", "--seconds", "0.5", "--servers", "1", "--pg-url", pg_server]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, (done.stdout, done.stderr[-3000:])
    for line in ("latency of phase_advance", "postgres in process", "sqlite   over HTTP"):
        assert line in done.stdout, (line, done.stdout)
    assert "postgres 1 servers" in done.stdout and "sqlite   1 processes" in done.stdout
