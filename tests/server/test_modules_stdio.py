"""The governed-module story end to end, over a real stdio `phasegate serve` and the MCP SDK's
client, with the supervisor's steps through the real `phasegate` command: register v1 → a task
at IMPLEMENT → draft → two files changed → diff → sandboxed validation → PR → promote (v2,
attested) → install → MONITOR → rollback, each step in the ledger with its actor and hashes."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from module_kit import MODULE, SKILL_PATCH, make_module_dir, tree_files
from server_kit import (
    ARTIFACTS,
    advance_to,
    cli,
    ledger_rows,
    ok,
    put_artifact,
    refusal,
    stdio_session,
    write_toml,
)

from enforcer.phases import Phase

AGENT_STEPS = [
    "draft.created",
    "draft.edited",
    "draft.edited",
    "draft.validation_started",
    "draft.validated",
    "promotion.promoted",
    "module.installed",
    "module.rolled_back",
    "module.installed",
]


async def test_register_draft_validate_promote_install_and_roll_back_over_stdio(
    state_dir: Path, sample_project: Path, tmp_path: Path
) -> None:
    write_toml(state_dir, sample_project)
    source = make_module_dir(tmp_path / "skills")
    install = tmp_path / "live" / MODULE
    added = cli(
        "module", "add", MODULE, "--state-dir", str(state_dir), "--actor", "sue",
        "--from", str(source), "--install-to", str(install), "--json",
        "--", sys.executable, "check.py",
    )  # fmt: skip
    v1 = json.loads(added.stdout)
    assert v1["version"] == 1 and install.is_symlink()
    v1_files = tree_files(install)
    assert v1_files == tree_files(source)

    async with stdio_session(state_dir, "alice") as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert "draft_validate" in (tools["draft_create"].description or "")
        ok(await s.call_tool("task_start", {"title": "sharper review skill", "task": "M1"}))
        await advance_to(s, "M1", Phase.IMPLEMENT)

        draft = ok(await s.call_tool("draft_create", {"task": "M1", "module": MODULE}))
        assert (draft["base_version"], draft["state"]) == (1, "CREATED")
        d = draft["draft"]
        write = {
            "draft": d,
            "path": "prompts/review.md",
            "content": "# Review prompt\n\nBe kind.\n",
        }
        assert ok(await s.call_tool("draft_write", write))["state"] == "EDITING"
        ok(await s.call_tool("draft_apply_patch", {"draft": d, "patch": SKILL_PATCH}))
        diff = ok(await s.call_tool("draft_diff", {"draft": d}))
        assert (diff["files"], diff["added"], diff["removed"]) == (2, 2, 2)
        assert "+Read the whole diff." in diff["diff"]

        validated = ok(await s.call_tool("draft_validate", {"draft": d}))
        report = validated["report"]
        assert validated["state"] == "VALIDATED" and report["exit_code"] == 0
        assert report["isolation"] in ("bubblewrap", "unshare", "none")
        assert report["sandboxed"] is (report["isolation"] != "none")
        assert report["bundle_sha256"] == validated["bundle_sha256"]
        assert "ok 2 markdown files" in report["stdout_tail"]

        # The draft's own diff is the IMPLEMENT evidence; the server's tests run in VERIFY.
        put = {"task": "M1", "name": "git_diff.patch", "content": diff["diff"]}
        assert ok(await s.call_tool("evidence_put", put))["valid"] is True
        ok(await s.call_tool("phase_advance", {"task": "M1"}))
        await advance_to(s, "M1", Phase.PR)

        promoted = ok(await s.call_tool("draft_promote", {"draft": d}))
        assert promoted["version"] == 2 and promoted["bundle_sha256"] == validated["bundle_sha256"]
        versions = ok(await s.call_tool("module_versions", {"module": MODULE}))
        v2 = versions["versions"][1]
        assert (versions["active"], v2["draft"], v2["source_version"]) == (1, d, 1)
        assert v2["attestation_sha256"] == promoted["attestation_sha256"]

        args = {"task": "M1", "module": MODULE, "version": 2}
        installed = ok(await s.call_tool("module_install", args))
        assert (installed["version"], installed["from_version"]) == (2, 1)
        v2_files = tree_files(install)
        assert v2_files["SKILL.md"].startswith("# Review skill\n\nRead the whole diff.")
        assert v2_files["prompts/review.md"].endswith("Be kind.\n")

        await put_artifact(s, "M1", Phase.PR)
        ok(await s.call_tool("phase_advance", {"task": "M1"}))
        back = {"task": "M1", "module": MODULE, "reason": "reviews got worse"}
        rolled = ok(await s.call_tool("module_rollback", back))
        assert (rolled["version"], rolled["from_version"]) == (1, 2)
        assert tree_files(install) == v1_files
        listed = ok(await s.call_tool("module_versions", {"module": MODULE}))
        assert listed["active"] == 1 and [v["version"] for v in listed["versions"]] == [1, 2]
        ok(await s.call_tool("module_install", args))  # v2 stays installable
        assert tree_files(install) == v2_files

    rows = ledger_rows(state_dir)
    registered = [e for e in rows if e["type"] == "module.registered"]
    assert len(registered) == 1 and registered[0]["actor"] == "sue"
    assert registered[0]["data"]["validator"] == [sys.executable, "check.py"]
    steps = [e for e in rows if e["type"] in AGENT_STEPS and e["subject"].get("task") == "M1"]
    assert [e["type"] for e in steps] == AGENT_STEPS
    assert {e["actor"] for e in steps} == {"alice"}
    by_type = {e["type"]: e["data"] for e in steps}
    assert by_type["draft.validated"]["bundle_sha256"] == promoted["bundle_sha256"]
    assert by_type["promotion.promoted"]["diff_sha256"] == diff["diff_sha256"]
    assert by_type["promotion.promoted"]["report_sha256"] == validated["report_sha256"]
    assert by_type["module.rolled_back"]["reason"] == "reviews got worse"
    for e in steps:
        assert any(k.endswith("sha256") for k in e["data"]), e["type"]
    # The sandboxed run is an agent.verify span inside the draft_validate call's span.
    spans = {}
    for path in (state_dir / "telemetry").glob("traces*.jsonl"):
        for line in path.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    spans.update({x["spanId"]: x for x in ss["spans"]})

    def attrs(span: dict[str, Any]) -> dict[str, Any]:
        return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}

    verify = [
        x for x in spans.values() if x["name"] == "agent.verify" and "phasegate.draft" in attrs(x)
    ]
    assert len(verify) == 1, [x["name"] for x in spans.values()]
    assert attrs(verify[0])["phasegate.draft"] == d
    assert attrs(verify[0])["phasegate.sandbox.isolation"] == report["isolation"]
    assert spans[verify[0]["parentSpanId"]]["name"] == "tools/call draft_validate"
    report_text = cli("verify", "--state-dir", str(state_dir)).stdout
    assert "2 module versions" in report_text and "installed trees" in report_text
    listing = json.loads(
        cli("module", "versions", MODULE, "--state-dir", str(state_dir), "--json").stdout
    )
    assert listing["active"] == 2 and listing["consistent"] is True


async def test_paths_leaving_the_module_are_refused_by_every_tool_and_a_bad_patch_by_all(
    state_dir: Path, sample_project: Path, tmp_path: Path
) -> None:
    write_toml(state_dir, sample_project)
    source = make_module_dir(tmp_path / "skills")
    cli(
        "module", "add", MODULE, "--state-dir", str(state_dir), "--from", str(source),
        "--install-to", str(tmp_path / "live" / MODULE), "--", sys.executable, "check.py",
    )  # fmt: skip
    async with stdio_session(state_dir, "alice") as s:
        ok(await s.call_tool("task_start", {"title": "paths", "task": "P1"}))
        await advance_to(s, "P1", Phase.IMPLEMENT)
        d = ok(await s.call_tool("draft_create", {"task": "P1", "module": MODULE}))["draft"]
        before = ok(await s.call_tool("draft_show", {"draft": d}))
        for bad in ("../outside.md", "/etc/passwd", "a/../../b", "prompts//x.md", "a\\b"):
            calls: list[tuple[str, dict[str, Any]]] = [
                ("draft_write", {"draft": d, "path": bad, "content": "x"}),
                ("draft_delete_file", {"draft": d, "path": bad}),
                ("draft_show", {"draft": d, "path": bad}),
                ("draft_apply_patch", {"draft": d, "patch": f"--- a/{bad}\n+++ b/{bad}\n"
                                       "@@ -1 +1 @@\n-x\n+y\n"}),
            ]  # fmt: skip
            for name, args in calls:
                refusal(await s.call_tool(name, args), "INVALID_ARGUMENT")
        stale = SKILL_PATCH.replace("-Read the diff.", "-Read the diff carefully.")
        both = "--- /dev/null\n+++ b/fresh.md\n@@ -0,0 +1 @@\n+# fresh\n" + stale
        error = refusal(
            await s.call_tool("draft_apply_patch", {"draft": d, "patch": both}), "CONFLICT"
        )
        assert error["details"]["path"] == "SKILL.md"
        after = ok(await s.call_tool("draft_show", {"draft": d}))
        assert (after["bundle_sha256"], after["state"]) == (before["bundle_sha256"], "CREATED")
        assert ok(await s.call_tool("draft_diff", {"draft": d}))["files"] == 0
    assert not (tmp_path / "outside.md").exists()
    assert [e for e in ledger_rows(state_dir) if e["type"] == "draft.edited"] == []


async def test_pause_refuses_promotion_while_other_tools_work_and_freeze_refuses_them_all(
    state_dir: Path, sample_project: Path, tmp_path: Path
) -> None:
    write_toml(state_dir, sample_project)
    source = make_module_dir(tmp_path / "skills")
    cli(
        "module", "add", MODULE, "--state-dir", str(state_dir), "--from", str(source),
        "--install-to", str(tmp_path / "live" / MODULE), "--", sys.executable, "check.py",
    )  # fmt: skip
    async with stdio_session(state_dir, "alice") as s:
        ok(await s.call_tool("task_start", {"title": "controls", "task": "C1"}))
        await advance_to(s, "C1", Phase.IMPLEMENT)
        d = ok(await s.call_tool("draft_create", {"task": "C1", "module": MODULE}))["draft"]
        ok(await s.call_tool("draft_write", {"draft": d, "path": "x.md", "content": "# x\n"}))
        cli("pause", "--reason", "release week", "--state-dir", str(state_dir))
        assert ok(await s.call_tool("draft_validate", {"draft": d}))["state"] == "VALIDATED"
        name, content = ARTIFACTS[Phase.IMPLEMENT]
        ok(await s.call_tool("evidence_put", {"task": "C1", "name": name, "content": content}))
        ok(await s.call_tool("phase_advance", {"task": "C1"}))
        await advance_to(s, "C1", Phase.PR)
        refusal(await s.call_tool("draft_promote", {"draft": d}), "PROMOTION_PAUSED")
        install = {"task": "C1", "module": MODULE, "version": 1}
        ok(await s.call_tool("module_install", install))  # other tools still work
        ok(await s.call_tool("draft_diff", {"draft": d}))
        cli("resume", "--reason", "done", "--state-dir", str(state_dir))
        cli("freeze", "--reason", "incident", "--state-dir", str(state_dir))
        mutating = {
            "draft_create": {"task": "C1", "module": MODULE},
            "draft_write": {"draft": d, "path": "y.md", "content": "# y\n"},
            "draft_delete_file": {"draft": d, "path": "x.md"},
            "draft_apply_patch": {"draft": d, "patch": SKILL_PATCH},
            "draft_rebase": {"draft": d},
            "draft_validate": {"draft": d},
            "draft_discard": {"draft": d, "reason": "no"},
            "draft_promote": {"draft": d},
            "module_install": install,
            "module_rollback": {"task": "C1", "module": MODULE, "reason": "no"},
        }
        for tool, args in mutating.items():
            refusal(await s.call_tool(tool, args), "FROZEN")
        for tool, args in (("module_list", {}), ("draft_show", {"draft": d})):
            ok(await s.call_tool(tool, args))  # reads still work
        cli("unfreeze", "--reason", "over", "--state-dir", str(state_dir))
        # Controls that cannot be read refuse (fail closed); reads go on.
        db = sqlite3.connect(state_dir / "phasegate.db", isolation_level=None)
        db.execute("ALTER TABLE controls RENAME TO controls_away")
        refusal(await s.call_tool("draft_promote", {"draft": d}), "FROZEN")
        refusal(await s.call_tool("module_install", install), "FROZEN")
        ok(await s.call_tool("module_versions", {"module": MODULE}))
        db.execute("ALTER TABLE controls_away RENAME TO controls")
        db.close()
        assert ok(await s.call_tool("draft_promote", {"draft": d}))["version"] == 2
    blocked = [e for e in ledger_rows(state_dir) if e["type"] == "promotion.blocked"]
    assert [e["data"]["code"] for e in blocked] == ["PROMOTION_PAUSED"]
