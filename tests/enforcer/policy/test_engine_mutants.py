"""The policy engine's words at the edges: tests written against the mutants that survived the
policy tests (scripts/mutation.py, target enforcer/policy/engine.py). A refusal's reason and
hint are what an agent reads to know what to do next, so their counts and their advice are
checked here, beside the codes and rules the other policy tests check."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_kit import ALICE, heading, policy_world, refusal, write_config

from enforcer.policy.engine import duration

POLICY = """
[policy.modules.skills]
forbidden_paths = ["secrets/**"]
"""

TWO_SECRETS = """diff --git a/secrets/a b/secrets/a
new file mode 100644
--- /dev/null
+++ b/secrets/a
@@ -0,0 +1 @@
+one
diff --git a/secrets/b b/secrets/b
new file mode 100644
--- /dev/null
+++ b/secrets/b
@@ -0,0 +1 @@
+two
"""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-5, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3660, "1h 1m"),
        (86_400, "1d"),
        (86_400 + 3600, "1d 1h"),
        (2 * 86_400 + 3 * 3600 + 59, "2d 3h"),
    ],
)
def test_a_duration_reads_in_its_two_largest_units(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def test_an_edit_on_ruled_paths_names_the_first_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    async with policy_world(tmp_path, POLICY) as w:
        m = w.e.modules
        draft = (await m.draft_create(ALICE, "T1", "skills"))["draft"]
        several = await refusal(m.draft_apply_patch(ALICE, draft, TWO_SECRETS))
        one = await refusal(m.draft_write(ALICE, draft, "secrets/c", "three\n"))
    assert (several.code, several.details["paths_count"]) == ("POLICY_DENIED", 2)
    assert several.message.endswith("and 1 more path(s)")
    assert (one.code, one.details["paths_count"]) == ("POLICY_DENIED", 1)
    assert "more path(s)" not in one.message
    # An edit is refused before it lands: the advice is to leave the paths out.
    assert several.hint.startswith("leave these paths out of the draft;")


async def test_a_limit_lowered_below_the_days_count_still_names_every_count_over_it(
    tmp_path: Path,
) -> None:
    """A reload may lower the daily limit below what was already used today: an actor (or a
    module) past the new limit is over it too, not only one exactly at it."""
    async with policy_world(tmp_path, "[policy]\nmax_promotions_per_day = 3\n") as w:
        await w.register("tools")
        await w.promoted({"a.md": heading("a")})
        await w.promoted({"b.md": heading("b")})
        await w.promoted({"a.md": heading("a")}, module="tools")
        write_config(w.config, "[policy]\nmax_promotions_per_day = 1\n")
        on_tools = await refusal(
            w.e.modules.draft_promote(ALICE, await w.draft({"c.md": heading("c")}, module="tools"))
        )
        on_skills = await refusal(
            w.e.modules.draft_promote(ALICE, await w.draft({"c.md": heading("c")}))
        )
    for err in (on_tools, on_skills):
        assert err.code == "POLICY_DENIED" and err.details["rules"] == ["max_promotions_per_day"]
        assert err.details["limits"]["actor"] == {"actor": "alice", "used": 3, "left": 0}
    assert "module tools has had 1 and alice has made 3 promotion(s)" in on_tools.message
    assert "module skills has had 2 and alice has made 3 promotion(s)" in on_skills.message
