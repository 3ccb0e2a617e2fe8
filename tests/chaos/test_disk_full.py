"""Chaos (d): the disk fills up during promotions. The state directory sits on a small real
tmpfs (the mount of tests/server/test_storage_full.py; root only); drafts are validated while
there is room, then the disk is filled to the last byte and promotions are attempted
(draft_promote through the real enforcer, the same call the MCP tool makes). Each is refused
with STORAGE_FULL — no other error, no traceback — or, when what it needs happened to fit,
promoted and acknowledged; nothing acknowledged before is lost, no half-written version or blob
is visible, and once space is freed the promotions go through and ``phasegate verify`` passes.
The figures are printed; pytest -s shows them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from policy_kit import ALICE, policy_world
from server_kit import cli
from test_storage_full import fill, small_disk

from enforcer.errors import PhasegateError
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

DRAFTS = 5  # drafts of the same version: promoted while full, all but one would conflict
ATTEMPTS = 5
POLICY = "[policy]\nmax_promotions_per_day = 1000\n[telemetry]\nenabled = false\n"


def _ledger(state: Path) -> list[tuple[int, str]]:
    """(seq, leaf hash) of every entry, read from the database file by another connection."""
    db = sqlite3.connect(f"file:{state / 'phasegate.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT seq, leaf_hash FROM ledger ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(int(s), str(h)) for s, h in rows]


def _bad_blobs(state: Path) -> list[str]:
    """Blob files whose bytes do not hash to their name, and leftovers of unfinished writes."""
    bad = []
    for path in (state / "blobs").rglob("*"):
        if path.is_dir():
            continue
        if (
            path.parent.parent.name == "sha256"
            and hashlib.sha256(path.read_bytes()).hexdigest() == path.name
        ):
            continue
        bad.append(str(path.relative_to(state)))
    return bad


async def _promote_each(m: Any, drafts: list[str]) -> tuple[dict[str, int], list[int]]:
    """Try every draft's promotion on the full disk: the refusal codes, and what went through."""
    codes: dict[str, int] = {}
    promoted: list[int] = []
    for draft in drafts:
        try:
            done = await m.draft_promote(ALICE, draft)
        except PhasegateError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
            # After one promotion fitted, the others are based on an older version: CONFLICT.
            assert e.code == "STORAGE_FULL" or (promoted and e.code == "CONFLICT"), e.message
            if e.code == "STORAGE_FULL":
                assert "no space left" in e.message and "\n" not in e.message
                assert "free space" in e.hint
        else:  # it fitted after all: acknowledged, so it must stay
            promoted.append(int(done["version"]))
    return codes, promoted


@pytest.mark.timeout(180)
async def test_a_full_disk_refuses_promotions_cleanly_and_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", "16m") as disk:
        async with policy_world(disk, POLICY) as w:
            m = w.e.modules
            await w.promoted({"notes/0.md": "# note 0\n"})  # v2, acknowledged
            drafts = [
                await w.draft({f"notes/{i}.md": f"# note {i}\n" + "x\n" * 40})
                for i in range(1, DRAFTS + 1)
            ]
            acknowledged = _ledger(w.state)
            blobs_before = sum(1 for p in (w.state / "blobs").rglob("*") if p.is_file())

            filler = fill(disk)
            started = time.monotonic()
            codes, promoted_full = await _promote_each(m, drafts)
            for _ in range(ATTEMPTS):  # and again, and a new draft: refused the same way
                more, fitted = await _promote_each(m, drafts[-1:])
                assert not fitted or promoted_full
                for code, n in more.items():
                    codes[code] = codes.get(code, 0) + n
            refused_s = time.monotonic() - started
            assert codes.get("STORAGE_FULL", 0) >= 1, "nothing needed room on a full disk"
            assert not _bad_blobs(w.state), _bad_blobs(w.state)
            listed = await m.module_versions("skills")  # reads go on
            assert [v["version"] for v in listed["versions"]] == list(
                range(1, 3 + len(promoted_full))
            )
            assert _ledger(w.state)[: len(acknowledged)] == acknowledged
            acknowledged = _ledger(w.state)
        # The server stopped while the disk was full (its last checkpoint could not be written).
        filler.unlink()
        async with open_runtime(w.state, config_path=w.config, clock=w.clock) as rt:
            e = Enforcer(rt)
            assert _ledger(w.state)[: len(acknowledged)] == acknowledged  # nothing lost
            assert not _bad_blobs(w.state)
            await e.lease_acquire(ALICE, "T1")
            retried = drafts[0]
            if promoted_full:  # the others are based on an older version now: a fresh one
                retried = (await e.modules.draft_create(ALICE, "T1", "skills"))["draft"]
                await e.modules.draft_write(ALICE, retried, "notes/late.md", "# late\n")
                assert (await e.modules.draft_validate(ALICE, retried))["state"] == "VALIDATED"
            after = int((await e.modules.draft_promote(ALICE, retried))["version"])
            assert after == 3 + len(promoted_full)
            assert await e.replay_equals_store()
        verify = cli("verify", "--state-dir", str(w.state), check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        blobs_after = sum(1 for p in (w.state / "blobs").rglob("*") if p.is_file())
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == [], tracebacks  # every failure was a one-line refusal or log line
    figures = {
        "disk": "16m tmpfs, filled to the last byte",
        "entries_acknowledged_before_full": len(acknowledged),
        "promotions_tried_while_full": DRAFTS + ATTEMPTS,
        "refused_by_code": codes,
        "promoted_while_full": len(promoted_full),
        "refusals_time_s": round(refused_s, 3),
        "lost_entries": 0,
        "version_promoted_after_freeing": after,
        "blobs_before_full": blobs_before,
        "blobs_after": blobs_after,
        "verify_exit": verify.returncode,
    }
    print(json.dumps(figures, indent=2))
