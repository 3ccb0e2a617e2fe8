"""Readable evidence copies after a crash: the copy is written once the record has committed,
so a server killed in between leaves the previous version (or none). `phasegate verify` counts
such a copy as stale, not as tampering; the next server to start brings it up to its record.
Anything that is no recorded version is still a fault."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from phasegate_testkit import ALICE, enforcer_at

from enforcer.clock import SystemClock
from enforcer.errors import LedgerFaultError
from enforcer.integrity import check_integrity

V1 = "# Problem\nfirst\n\n# Objectives\n- one\n"
V2 = "# Problem\nsecond\n\n# Objectives\n- two\n"


async def killed_between_record_and_copy(state: Path) -> Path:
    """Record V1 then V2, and leave the copy at V1 with a time from before V2's record: what a
    server killed right after committing V2 leaves on disk."""
    async with enforcer_at(state, clock=SystemClock()) as e:
        await e.task_start(ALICE, "t", "T1")
        await e.evidence_put(ALICE, "T1", "strategy.md", V1)
        copy = e.files.named_path("T1", "STRATEGIZE", "strategy.md")
        before = time.time() - 5
        await e.evidence_put(ALICE, "T1", "strategy.md", V2)
    copy.write_text(V1)
    os.utime(copy, (before, before))
    return copy


async def test_a_copy_left_at_the_previous_version_is_stale_and_refreshed_at_start(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    copy = await killed_between_record_and_copy(state)
    report = check_integrity(state)
    assert report.stale_copies == 1 and report.as_dict()["stale_evidence_files"] == 1
    async with enforcer_at(state, clock=SystemClock()) as e:
        assert await e.refresh_evidence_copies() == 1
        assert await e.refresh_evidence_copies() == 0  # up to date: nothing hashed again
    assert copy.read_text() == V2
    assert check_integrity(state).stale_copies == 0


async def test_a_missing_copy_is_written_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    copy = await killed_between_record_and_copy(state)
    copy.unlink()
    async with enforcer_at(state, clock=SystemClock()) as e:
        assert await e.refresh_evidence_copies() == 1
    assert copy.read_text() == V2


async def test_a_copy_that_is_no_recorded_version_is_still_a_fault(tmp_path: Path) -> None:
    state = tmp_path / "state"
    copy = await killed_between_record_and_copy(state)
    copy.write_text("# Problem\nforged\n\n# Objectives\n- none\n")
    with pytest.raises(LedgerFaultError) as raised:
        check_integrity(state)
    assert raised.value.kind == "evidence"
