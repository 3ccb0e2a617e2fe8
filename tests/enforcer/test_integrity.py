"""Whole-state integrity (`phasegate verify`, scripts/integrity.py): evidence blobs and files
and the projection are checked against the ledger, not only the chain."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from enforcer.errors import LedgerFaultError
from enforcer.integrity import check_integrity
from server.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("demo") / "state"
    asyncio.run(run_demo(state, say=lambda *_: None))
    return state


def copy_of(state: Path, tmp_path: Path) -> Path:
    target = tmp_path / "state"
    subprocess.run(["cp", "-a", str(state), str(target)], check=True)
    return target


def an_evidence_blob(state: Path) -> Path:
    """The blob of one recorded artifact (the store holds module blobs too)."""
    conn = sqlite3.connect(state / "phasegate.db")
    try:
        (sha,) = conn.execute("SELECT sha256 FROM evidence ORDER BY seq LIMIT 1").fetchone()
    finally:
        conn.close()
    return state / "blobs" / "sha256" / sha[:2] / sha


def test_a_demo_state_passes_the_whole_integrity_check(demo_state: Path) -> None:
    report = check_integrity(demo_state)
    assert report.ledger.entries > 20
    assert report.blobs_checked == report.files_checked == 10


def test_an_altered_evidence_blob_is_an_evidence_fault(demo_state: Path, tmp_path: Path) -> None:
    state = copy_of(demo_state, tmp_path)
    blob = an_evidence_blob(state)
    blob.write_bytes(blob.read_bytes() + b"x")
    with pytest.raises(LedgerFaultError) as caught:
        check_integrity(state)
    assert caught.value.kind == "evidence"


def test_an_edited_evidence_copy_is_an_evidence_fault(demo_state: Path, tmp_path: Path) -> None:
    state = copy_of(demo_state, tmp_path)
    spec = next((state / "evidence").rglob("spec.md"))
    spec.write_text("# Acceptance Criteria\n- something else\n")
    with pytest.raises(LedgerFaultError) as caught:
        check_integrity(state)
    assert caught.value.kind == "evidence"


def test_a_projection_edited_behind_the_ledger_is_detected(
    demo_state: Path, tmp_path: Path
) -> None:
    state = copy_of(demo_state, tmp_path)
    conn = sqlite3.connect(state / "phasegate.db", isolation_level=None)
    try:
        conn.execute("UPDATE tasks SET phase = 'REVIEW'")
    finally:
        conn.close()
    with pytest.raises(LedgerFaultError) as caught:
        check_integrity(state)
    assert caught.value.kind == "projection"


def test_the_integrity_script_exits_0_then_1_after_tampering(
    demo_state: Path, tmp_path: Path
) -> None:
    state = copy_of(demo_state, tmp_path)
    script = [sys.executable, str(ROOT / "scripts" / "integrity.py"), "--state-dir", str(state)]
    assert subprocess.run(script, capture_output=True, cwd=ROOT).returncode == 0
    an_evidence_blob(state).write_bytes(b"forged")
    done = subprocess.run(script, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    assert "evidence" in done.stdout
