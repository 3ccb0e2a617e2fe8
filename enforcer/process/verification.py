"""Server-run verification: the configured test command, never one an agent chose.

The command (an argv from configuration; ``{junit}`` becomes the report path) runs in the
configured directory with a timeout, in its own process group so a timeout kills every child.
Counts come from the JUnit XML it writes, not from its output text. A missing command, a timeout
or an unreadable report gives a failed result with the reason, never a hang or a crash.

    run = await run_verification(["python", "-m", "pytest", "--junitxml={junit}"], cwd, 600)
    run.results["failed"]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JunitCounts", "VerificationRun", "parse_junit", "run_verification"]

logger = logging.getLogger(__name__)

MAX_JUNIT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class JunitCounts:
    passed: int
    failed: int
    errors: int
    skipped: int


@dataclass(frozen=True, slots=True)
class VerificationRun:
    exit_code: int
    duration_s: float
    counts: JunitCounts
    output: bytes  # combined stdout/stderr, tail-truncated
    reason: str | None  # why the run failed to produce usable results (timeout, missing...)
    command: list[str]

    def results(self, subject_sha256: str | None) -> dict[str, Any]:
        """The test_results.json document."""
        out: dict[str, Any] = {
            "passed": self.counts.passed,
            "failed": self.counts.failed,
            "errors": self.counts.errors,
            "skipped": self.counts.skipped,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "subject_sha256": subject_sha256,
            "command": self.command,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def parse_junit(data: bytes) -> JunitCounts:
    """Counts from a JUnit XML report (pytest, and the common <testsuites>/<testsuite> form).

    Raises ValueError for anything else; DTDs and entities are refused outright (no expansion).
    """
    if len(data) > MAX_JUNIT_BYTES:
        raise ValueError("JUnit report is too large")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("JUnit report with a DTD or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"JUnit report is not XML: {e}") from e
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites"):
        raise ValueError(f"unexpected JUnit root element <{root.tag}>")
    tests = failed = errors = skipped = 0
    for suite in suites:
        try:
            tests += int(suite.get("tests", "0"))
            failed += int(suite.get("failures", "0"))
            errors += int(suite.get("errors", "0"))
            skipped += int(suite.get("skipped", "0"))
        except ValueError as e:
            raise ValueError(f"JUnit counts are not integers: {e}") from e
    passed = tests - failed - errors - skipped
    if min(tests, failed, errors, skipped, passed) < 0:
        raise ValueError("JUnit counts are inconsistent")
    return JunitCounts(passed=passed, failed=failed, errors=errors, skipped=skipped)


async def _read_tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    buf = bytearray()
    while chunk := await stream.read(65536):
        buf += chunk
        if len(buf) > 2 * limit:
            del buf[: len(buf) - limit]
    if len(buf) > limit:
        return b"[... output truncated ...]\n" + bytes(buf[-limit:])
    return bytes(buf)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_verification(
    command: list[str], cwd: Path, timeout_s: float, max_log_bytes: int = 1024 * 1024
) -> VerificationRun:
    """Run the command and return counts and output; never raises for a failing command."""
    zero = JunitCounts(0, 0, 0, 0)
    with tempfile.TemporaryDirectory(prefix="phasegate-verify-") as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [part.replace("{junit}", str(junit)) for part in command]
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
            msg = f"verify command could not start: {e}\n"
            return VerificationRun(127, 0.0, zero, msg.encode(), "command_not_found", argv)
        assert proc.stdout is not None
        reader = asyncio.ensure_future(_read_tail(proc.stdout, max_log_bytes))
        reason: str | None = None
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            reason = "timeout"
        except BaseException:
            _kill_group(proc)
            reader.cancel()
            raise
        try:
            output = await asyncio.wait_for(reader, 10)
        except TimeoutError:  # a grandchild kept the pipe open after the group was killed
            reader.cancel()
            output = b""
        duration = time.monotonic() - started
        exit_code = proc.returncode if proc.returncode is not None else -1
        if reason == "timeout":
            output += f"\n[phasegate: killed after {timeout_s} s timeout]\n".encode()
            return VerificationRun(exit_code, duration, zero, output, reason, argv)
        try:
            counts = parse_junit(junit.read_bytes())
        except FileNotFoundError:
            return VerificationRun(exit_code, duration, zero, output, "no_junit_report", argv)
        except ValueError as e:
            output += f"\n[phasegate: {e}]\n".encode()
            return VerificationRun(exit_code, duration, zero, output, "bad_junit_report", argv)
        return VerificationRun(exit_code, duration, counts, output, None, argv)
