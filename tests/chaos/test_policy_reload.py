"""Chaos (a): a policy reload that fails half-way keeps the old policy. The enforcer over a real
state directory re-reads ``phasegate.toml`` at every decision (as the server does); the file is
rewritten with one that is wrong part-way — a truncated write (every cut point of the new file,
the empty file a truncating writer leaves first among them), bad TOML, valid TOML with an
invalid ``[policy]`` value, and a file caught while being overwritten in place (the new file's
head over the old file's tail, at every cut point). After each, the decision follows the old
policy, the ledger holds one ``policy.reload_failed`` per distinct bad file, and a good file
afterwards is in force at the next decision (``policy.changed``).

A torn file that happens to be valid (a cut at a line boundary) is a valid file: it is taken as
written, and the figures count those cut points. Write the file whole and rename it into place
to never expose one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from policy_kit import ALICE, GATES, policy_world, refusal

from enforcer.config import parse_config
from enforcer.errors import InvalidArgumentError, PhasegateError
from enforcer.policy.rules import PolicySet

OLD = '[policy.modules.skills]\nlocked_paths = ["SKILL.md"]\nforbidden_paths = ["secrets/**"]\n'
NEW = '[policy.modules.skills]\nlocked_paths = ["LICENSE"]\nforbidden_paths = ["vault/**"]\n'
BROKEN = {
    "bad TOML": '[policy.modules.skills\nlocked_paths = ["SKILL.md"\n',
    "bad value": "[policy]\napproval_expiry_s = 5\n",
    "unknown risk class": '[policy]\nauto_approve = ["NONE"]\n',
    "bad window": '[policy.modules.skills]\ninstall_windows = ["Someday 25:00-26:00"]\n',
    "bad pattern": '[policy.modules.skills]\nlocked_paths = ["a/**b[/"]\n',
    "unknown key": '[policy.modules.skills]\nlocked_pahts = ["SKILL.md"]\n',
    "not UTF-8": '[policy]\nauto_approve = ["\xff"]\n',
}


def _policy_of(data: bytes) -> str | None:
    """The policy_set_hash a file's bytes give when valid, else None."""
    if not data.strip():
        return None  # an empty file is a write in progress: refused (see PolicySource)
    try:
        return PolicySet.from_config(
            parse_config(data.decode("utf-8"), Path("x")).policy
        ).policy_set_hash
    except (InvalidArgumentError, UnicodeDecodeError):
        return None


@pytest.mark.timeout(120)
async def test_a_reload_that_fails_half_way_keeps_the_old_policy_and_a_good_file_is_taken(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path, OLD) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]

        writes = iter(range(1_000_000))

        async def decide() -> str:
            """One decision: writing SKILL.md; the policy_set_hash it was taken under."""
            try:  # new content each time: an unchanged write would decide nothing
                await m.draft_write(ALICE, draft, "SKILL.md", f"# edit {next(writes)}\n")
            except PhasegateError as err:
                assert err.code == "POLICY_DENIED", err
                return str(err.details["policy_set_hash"])
            return str((await w.ledger("draft.edited"))[-1].data["policy_set_hash"])

        old = await decide()
        old_bytes = (GATES + OLD).encode()
        new_bytes = (GATES + NEW).encode()
        new_hash = _policy_of(new_bytes)
        assert new_hash is not None and new_hash != old

        bad: list[tuple[str, bytes]] = [
            (k, (GATES + v).encode("latin-1")) for k, v in BROKEN.items()
        ]
        # Every cut point inside the policy part (the gates are the same in both files).
        for cut in range(len(GATES), len(new_bytes)):
            bad.append(("truncated", new_bytes[:cut]))
            bad.append(("torn overwrite", new_bytes[:cut] + old_bytes[cut:]))
        bad.append(("empty", b""))

        counts: dict[str, int] = {}
        taken_valid = 0
        distinct_refused: set[bytes] = set()
        started = time.monotonic()
        for kind, data in bad:
            expect = _policy_of(data)
            w.config.write_bytes(data)
            seen = await decide()
            if expect is None:  # refused: the old policy stays
                assert seen == old, (kind, data)
                distinct_refused.add(data)
                counts[kind] = counts.get(kind, 0) + 1
            else:  # a valid file after all: exactly what it says
                assert seen == expect, (kind, data)
                taken_valid += 1
            w.config.write_bytes(old_bytes)  # back to the old file before the next try
            assert await decide() == old
        elapsed = time.monotonic() - started

        failed = await w.ledger("policy.reload_failed")
        # One entry per distinct refused content (a content tried again is not ledgered anew).
        assert len(failed) == len(distinct_refused), (len(failed), len(distinct_refused))
        assert all(f.data["policy_set_hash"] == old for f in failed)
        assert all(f.data["error"] for f in failed)

        w.config.write_bytes(new_bytes)  # the good file
        assert await decide() == new_hash
        changed = (await w.ledger("policy.changed"))[-1]
        assert changed.data["policy_set_hash"] == new_hash and changed.data["previous"] == old
        err = await refusal(m.draft_write(ALICE, draft, "LICENSE", "x"))
        assert err.code == "POLICY_DENIED" and err.details["policy_set_hash"] == new_hash
        assert await w.e.replay_equals_store()
    figures = {
        "files_tried": len(bad),
        "refused_by_kind": counts,
        "refused_total": sum(counts.values()),
        "distinct_refused": len(distinct_refused),
        "reload_failed_entries": len(failed),
        "torn_but_valid_taken_as_written": taken_valid,
        "decisions": 2 * len(bad) + 2,
        "seconds": round(elapsed, 2),
    }
    print(json.dumps(figures, indent=2))
    assert counts["empty"] == 1 and all(counts.get(k) == 1 for k in BROKEN)
