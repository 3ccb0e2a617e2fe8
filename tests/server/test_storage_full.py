"""A full disk while serving, on a real 4 MB tmpfs: every write that needs room is refused with
STORAGE_FULL and a one-line message that says so (not INTERNAL behind a correlation id), reads
go on, and once space is freed the same call succeeds."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_kit import cli, ok, stdio_session, write_toml

STRATEGY = "# Problem\nThe disk fills up.\n\n# Objectives\n- say so\n"


@contextlib.contextmanager
def small_disk(where: Path, size: str = "4m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; returns it (remove it to free the room)."""
    filler = disk / "filler"
    with filler.open("wb") as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
            for size in (4096, 512, 1):  # the last pages too
                with contextlib.suppress(OSError):
                    while True:
                        os.write(f.fileno(), b"\0" * size)
    return filler


def error_of(result: object) -> dict[str, object] | None:
    if not getattr(result, "is_error", False):
        return None
    content = result.content  # type: ignore[attr-defined]
    return dict(json.loads(content[0].text)["error"])


async def test_a_full_disk_is_storage_full_in_one_line_and_passes_once_space_is_freed(
    tmp_path: Path, sample_project: Path
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        state_dir = disk / "state"
        write_toml(state_dir, sample_project, "[telemetry]\nenabled = false\n")
        log = tmp_path / "server.log"
        async with stdio_session(state_dir, log=log) as s:
            ok(await s.call_tool("task_start", {"title": "full disk", "task": "T1"}))
            filler = fill(disk)
            writes = [
                ("evidence_put", {"task": "T1", "name": "strategy.md", "content": STRATEGY}),
                ("prompt_attest", {"task": "T1", "prompt": "p" * 40_000}),
                ("task_start", {"title": "x" * 150, "task": "T2"}),
            ]
            codes = []
            for tool, arguments in writes:
                error = error_of(await s.call_tool(tool, arguments))
                if error is not None:
                    codes.append(error["code"])
                    assert error["code"] == "STORAGE_FULL", error
                    message = str(error["message"])
                    assert "no space left" in message and "\n" not in message
                    assert "free space" in str(error["hint"])
            assert codes, "no write needed room on a full disk"
            # Reads still work.
            assert ok(await s.call_tool("task_status", {"task": "T1"}))["phase"] == "STRATEGIZE"
            filler.unlink()
            put = ok(await s.call_tool(*writes[0]))
            assert put["valid"] is True
        text = log.read_text()
        assert "Traceback" not in text and "internal error" not in text
        cli("verify", "--state-dir", str(state_dir))
