"""forbidden_paths and locked_paths: refused at write, delete, patch and promote, ledgered."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_kit import ALICE, heading, policy_world, refusal

POLICY = """
[policy.modules.skills]
forbidden_paths = ["secrets/**", "*.pem"]
locked_paths = ["SKILL.md", "prompts/"]
"""

NEW_SECRET = """diff --git a/secrets/token b/secrets/token
new file mode 100644
--- /dev/null
+++ b/secrets/token
@@ -0,0 +1 @@
+hunter2
"""


@pytest.mark.parametrize(
    ("op", "path", "rule"),
    [
        ("write", "secrets/token", "forbidden_paths"),
        ("write", "keys/server.pem", "forbidden_paths"),
        ("write", "SKILL.md", "locked_paths"),
        ("write", "prompts/new.md", "locked_paths"),
        ("delete", "SKILL.md", "locked_paths"),
        ("delete", "prompts/review.md", "locked_paths"),
        ("patch", "secrets/token", "forbidden_paths"),
    ],
)
async def test_an_edit_touching_a_ruled_path_is_denied_and_changes_nothing(
    tmp_path: Path, op: str, path: str, rule: str
) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        before = await m.draft_show(draft)
        if op == "write":
            call = m.draft_write(ALICE, draft, path, heading("x"))
        elif op == "delete":
            call = m.draft_delete_file(ALICE, draft, path)
        else:
            call = m.draft_apply_patch(ALICE, draft, NEW_SECRET)
        err = await refusal(call)
        assert err.code == "POLICY_DENIED"
        assert err.details["rules"] == [rule]
        assert err.details["paths"][0]["path"] == path
        after = await m.draft_show(draft)
        assert after["bundle_sha256"] == before["bundle_sha256"] and after["state"] == "CREATED"
        refused = await w.ledger("draft.edit_refused")
        assert refused[-1].data["rules"] == [rule] and refused[-1].data["decision"] == "deny"
        assert refused[-1].data["policy_set_hash"] == err.details["policy_set_hash"]
        assert await w.e.replay_equals_store()


async def test_other_paths_edit_freely_and_the_entry_names_the_policy(tmp_path: Path) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        await m.draft_write(ALICE, draft, "notes/secrets.md", heading("not a secret dir"))
        edited = (await w.ledger("draft.edited"))[-1]
        changed = (await w.ledger("policy.changed"))[-1]
        assert edited.data["policy_set_hash"] == changed.data["policy_set_hash"]
        assert changed.seq < edited.seq and changed.data["previous"] is None
        assert changed.data["policy"]["policy"]["modules"]["skills"]["locked_paths"] == [
            "SKILL.md",
            "prompts/",
        ]


async def test_a_path_forbidden_after_the_edit_is_denied_at_promotion(tmp_path: Path) -> None:
    async with policy_world(tmp_path) as w:
        draft = await w.draft({"secrets/token.md": heading("t")})
        w.write_policy(POLICY)
        err = await refusal(w.e.modules.draft_promote(ALICE, draft))
        assert err.code == "POLICY_DENIED" and err.details["rules"] == ["forbidden_paths"]
        assert "draft_validate" in err.hint
        rejected = (await w.ledger("promotion.rejected"))[-1]
        assert rejected.data["policy_set_hash"] == err.details["policy_set_hash"]
        assert (await w.e.modules.module_versions("skills"))["versions"][-1]["version"] == 1
