"""The policy file is re-read on every decision: a valid change takes effect and is ledgered
(policy.changed); an invalid one leaves the previous policy in force, naming the key
(policy.reload_failed); every entry of a decision names a policy_set_hash the ledger knows."""

from __future__ import annotations

from pathlib import Path

from policy_kit import ALICE, ROOT, heading, lines, policy_world, refusal

LOCKED = '[policy.modules.skills]\nlocked_paths = ["SKILL.md"]\n'
TYPO = '[policy.modules.skills]\nlocked_pahts = ["SKILL.md"]\n'

# Entry types that record a decision the policy took part in.
DECISIONS = {
    "draft.edited",
    "draft.edit_refused",
    "promotion.requested",
    "promotion.rejected",
    "promotion.promoted",
    "module.installed",
    "module.rolled_back",
    "approval.approved",
    "approval.rejected",
    "approval.refused",
    "exception.granted",
    "exception.revoked",
}


async def test_a_changed_file_takes_effect_at_the_next_decision(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        await m.draft_write(ALICE, draft, "SKILL.md", "# one\n")
        first = (await w.ledger("policy.changed"))[-1].data["policy_set_hash"]
        w.write_policy(LOCKED)
        err = await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# two\n"))
        assert err.code == "POLICY_DENIED"
        changed = (await w.ledger("policy.changed"))[-1]
        assert changed.data["previous"] == first
        assert changed.data["policy_set_hash"] == err.details["policy_set_hash"] != first
        assert changed.data["path"] == str(w.config)
        w.write_policy("")  # back to the defaults: the first hash again
        await m.draft_write(ALICE, draft, "SKILL.md", "# three\n")
        assert (await w.ledger("policy.changed"))[-1].data["policy_set_hash"] == first


async def test_a_typo_keeps_the_previous_policy_and_is_ledgered_once(tmp_path: Path) -> None:
    async with policy_world(tmp_path, LOCKED) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        in_force = (await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# x\n"))).details[
            "policy_set_hash"
        ]
        w.write_policy(TYPO)
        for _ in range(3):
            err = await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# x\n"))
            assert err.code == "POLICY_DENIED" and err.details["policy_set_hash"] == in_force
            assert err.details["policy_file_error"]["keys"] == [
                "policy.modules.skills.locked_pahts"
            ]
        failed = await w.ledger("policy.reload_failed")
        assert len(failed) == 1
        assert failed[0].data["keys"] == ["policy.modules.skills.locked_pahts"]
        assert "locked_pahts" in failed[0].data["error"]
        assert failed[0].data["policy_set_hash"] == in_force
        w.write_policy("")
        await m.draft_write(ALICE, draft, "SKILL.md", "# free\n")
        assert (await w.ledger("policy.changed"))[-1].data["previous"] == in_force


async def test_a_vanished_file_keeps_the_policy_in_force(tmp_path: Path) -> None:
    async with policy_world(tmp_path, LOCKED) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        w.config.unlink()
        err = await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# x\n"))
        assert err.code == "POLICY_DENIED"
        assert "No such file" in (await w.ledger("policy.reload_failed"))[-1].data["error"]


async def test_the_dry_run_sees_the_new_file_but_records_nothing(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        draft = await w.draft({"a.md": heading("a")})
        before = len(await w.ledger())
        w.write_policy("[policy]\nauto_approve = []\n")
        check = await w.e.modules.policy_check(draft, ALICE)
        assert check["decision"] == "needs_approval"
        assert len(await w.ledger()) == before
        err = await refusal(w.e.modules.draft_promote(ALICE, draft))
        assert err.details["policy_set_hash"] == check["policy_set_hash"]
        types = [e.type for e in await w.ledger()][before:]
        assert types == ["policy.changed", "promotion.requested"]


async def test_every_decision_entry_names_a_policy_the_ledger_recorded(tmp_path: Path) -> None:
    async with policy_world(tmp_path, LOCKED) as w:
        m = w.e.modules
        v2 = await w.promoted({"a.md": heading("a")})
        await m.module_install(ALICE, "skills", v2, task="T1")
        await m.module_rollback(ALICE, "skills", "try the rollback", task="T1")
        w.write_policy('[policy.modules.skills]\nlocked_paths = ["LICENSE"]\n')
        draft = await w.draft({"b.md": lines(80)})
        ask = await refusal(m.draft_promote(ALICE, draft))
        await w.e.approvals.reject(ROOT, ask.details["approval"]["id"], "no")
        await refusal(m.draft_promote(ALICE, draft))
        await w.e.exceptions.grant(ROOT, "skills", "approval", "+1h", "x")
        await w.e.exceptions.revoke(ROOT, "X1", "y")
        d3 = (await m.draft_create(ALICE, "T1", "skills", await w.newest()))["draft"]
        await refusal(m.draft_write(ALICE, d3, "LICENSE", "x"))
        known: set[str] = set()
        seen: set[str] = set()
        for entry in await w.ledger():
            if entry.type == "policy.changed":
                known.add(entry.data["policy_set_hash"])
            elif entry.type in DECISIONS:
                seen.add(entry.type)
                assert entry.data["policy_set_hash"] in known, entry.as_dict()
        assert seen == DECISIONS - {"approval.approved", "approval.refused"}
        assert len(known) == 2
        assert await w.e.replay_equals_store()


async def test_an_emptied_file_is_a_write_in_progress_and_keeps_the_policy(tmp_path: Path) -> None:
    async with policy_world(tmp_path, LOCKED) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        in_force = (await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# x\n"))).details[
            "policy_set_hash"
        ]
        w.config.write_bytes(b"")  # what a reader sees right after a truncating write began
        err = await refusal(m.draft_write(ALICE, draft, "SKILL.md", "# y\n"))
        assert err.code == "POLICY_DENIED" and err.details["policy_set_hash"] == in_force
        assert "empty" in (await w.ledger("policy.reload_failed"))[-1].data["error"]
