"""The policy on both stores (SQLite, then PostgreSQL): its SQL is the portable subset, and
what it projects replays exactly — requests, decisions, exceptions, limits, reloads."""

from __future__ import annotations

from pathlib import Path

from policy_kit import ALICE, ROOT, heading, lines, policy_world, refusal

POLICY = """
[policy]
max_promotions_per_day = 2
[policy.modules.skills]
locked_paths = ["SKILL.md"]
"""


async def test_approvals_exceptions_limits_and_reloads_on_each_store(
    tmp_path: Path, store_url: str | None
) -> None:
    async with policy_world(tmp_path, POLICY, store_url=store_url) as w:
        m = w.e.modules
        draft = await w.draft({"a.md": lines(80)})
        ask = await refusal(m.draft_promote(ALICE, draft))
        approval = ask.details["approval"]["id"]
        again = await refusal(m.draft_promote(ALICE, draft))
        assert again.details["approval"]["id"] == approval  # ON CONFLICT DO NOTHING
        assert [a["status"] for a in await w.e.approvals.listing()] == ["PENDING"]
        await w.e.approvals.approve(ROOT, approval, "ok")
        assert (await m.draft_promote(ALICE, draft))["approval"] == approval
        assert (await w.e.approvals.show(approval))["status"] == "EXECUTED"
        await w.promoted({"b.md": heading("b")})
        capped = await w.draft({"c.md": heading("c")})
        assert (await refusal(m.draft_promote(ALICE, capped))).details["limits"]["module"] == {
            "used": 2,
            "left": 0,
        }
        await w.e.exceptions.grant(ROOT, "skills", "max_promotions_per_day", "+1h", "release")
        assert [x["rule"] for x in (await m.draft_promote(ALICE, capped))["exceptions"]] == [
            "max_promotions_per_day"
        ]
        w.write_policy("[policy]\nmax_promotions_per_dya = 1\n")
        locked = (await m.draft_create(ALICE, "T1", "skills", await w.newest()))["draft"]
        err = await refusal(m.draft_write(ALICE, locked, "SKILL.md", "# x\n"))
        assert err.details["policy_file_error"]["keys"] == ["policy.max_promotions_per_dya"]
        w.write_policy("")
        await m.draft_write(ALICE, locked, "SKILL.md", "# x\n")
        types = [e.type for e in await w.ledger()]
        assert types.count("policy.changed") == 2 and types.count("policy.reload_failed") == 1
        assert await w.e.replay_equals_store()
