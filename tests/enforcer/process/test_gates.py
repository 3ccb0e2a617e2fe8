"""The content check of every artifact: a pure function of its bytes (empty list = valid)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phasegate_testkit import DIFF, DIMENSIONS, INVALID, SMOKE_FAIL, SMOKE_OK, VALID, rubric

from enforcer.phases import Phase
from enforcer.process.gates import (
    DEFAULT_GATES,
    RESERVED_SERVER_ARTIFACTS,
    check_artifact,
    shape_hint,
)


def ok(name: str, text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return check_artifact(name, data) == []


# ---------------------------------------------------------------- defaults


def test_every_phase_but_done_has_a_default_gate_and_verify_needs_the_server_results() -> None:
    assert set(DEFAULT_GATES) == set(Phase) - {Phase.DONE}
    assert set(DEFAULT_GATES[Phase.VERIFY]) == RESERVED_SERVER_ARTIFACTS


@pytest.mark.parametrize("phase", [p for p in VALID], ids=str)
def test_the_sample_valid_artifact_of_each_phase_passes_and_its_invalid_twin_fails(
    phase: Phase,
) -> None:
    name, content = VALID[phase]
    assert DEFAULT_GATES[phase] == (name,)
    assert ok(name, content)
    assert not ok(name, INVALID[name])


def test_every_default_artifact_has_a_specific_shape_hint() -> None:
    generic = shape_hint("anything-else.txt")
    for names in DEFAULT_GATES.values():
        for name in names:
            assert shape_hint(name) != generic


# ---------------------------------------------------------------- headings


@pytest.mark.parametrize(
    "text",
    [
        "# Problem\nx\n# Objectives\n- y\n",
        "## problem\n\n### OBJECTIVES ###\n",
        "   # Problem\n#   Objectives  \n",
        "intro\n\n# Objectives\n- a\n# Problem\nb\n",
    ],
)
def test_strategy_passes_with_both_headings_at_any_level_and_case(text: str) -> None:
    assert ok("strategy.md", text)


@pytest.mark.parametrize(
    "text",
    [
        "# Problem\nx\n",
        "Problem\nObjectives\n",
        "#Problem\n#Objectives\n",
        "    # Problem\n    # Objectives\n",
        "# Problem\n```\n# Objectives\n```\n",
        "# The Problem\n# Objectives\n",
        "",
    ],
)
def test_strategy_fails_without_a_real_problem_and_objectives_heading(text: str) -> None:
    assert not ok("strategy.md", text)


def test_markdown_that_is_not_utf8_is_refused_as_such() -> None:
    assert check_artifact("strategy.md", b"# Problem\n\xff\xfe\n# Objectives\n") == [
        "not UTF-8 text"
    ]


def test_pr_summary_needs_summary_risks_and_rollback() -> None:
    assert ok("pr_summary.md", "# Summary\n## Risks\n### Rollback\n")
    problems = check_artifact("pr_summary.md", b"# Summary\n# Risks\n")
    assert len(problems) == 1 and "rollback" in problems[0].lower()


# ---------------------------------------------------------------- acceptance criteria


@pytest.mark.parametrize(
    "text",
    [
        "# Acceptance Criteria\n- works\n",
        "# acceptance   criteria\n* works\n",
        "## Acceptance Criteria\n1. works\n2) fast\n",
        "# Acceptance Criteria\n+ works\n# Other\n",
        "# Acceptance Criteria\n## Functional\n- works\n",
        "# Spec\n## Acceptance Criteria\nintro\n\n  - indented item\n",
    ],
)
def test_acceptance_criteria_pass_with_a_list_item_under_the_heading(text: str) -> None:
    assert ok("spec.md", text)


@pytest.mark.parametrize(
    "text",
    [
        "# Acceptance Criteria\nit should work\n",
        "# Acceptance Criteria\n# Notes\n- an item under another heading\n",
        "## Acceptance Criteria\n# Next section\n- not under it\n",
        "# Acceptance Criteria\n-\n- \n-no-space\n",
        "# Acceptance Criteria\n```\n- inside a code fence\n```\n",
        "- works\n- fast\n",
        "# Acceptance\n- works\n",
        "",
    ],
)
def test_acceptance_criteria_fail_without_a_list_item_under_the_heading(text: str) -> None:
    assert not ok("spec.md", text)


# ---------------------------------------------------------------- plan and edge cases


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("1. profile\n2. fix\n", True),
        ("- profile\n- fix\n- measure\n", True),
        ("# Plan\n* a\n\n* b\n", True),
        ("- just one step\n", False),
        ("We will profile and then fix it.\n", False),
        ("```\n1. a\n2. b\n```\n", False),
        ("", False),
    ],
)
def test_a_plan_needs_a_list_of_at_least_two_steps(text: str, valid: bool) -> None:
    assert ok("plan.md", text) is valid


@pytest.mark.parametrize(
    ("text", "valid"),
    [("- empty input\n", True), ("1. overflow\n", True), ("none\n", False), ("", False)],
)
def test_edge_cases_need_at_least_one_list_item(text: str, valid: bool) -> None:
    assert ok("edge_cases.md", text) is valid


# ---------------------------------------------------------------- unified diff

NEW_FILE = """diff --git a/new.py b/new.py
new file mode 100644
index 0000000..e69de29
--- /dev/null
+++ b/new.py
@@ -0,0 +1,2 @@
+x = 1
+y = 2
"""

TWO_FILES = """--- a/one.py
+++ b/one.py
@@ -1 +1 @@
-a
+b
--- a/two.py
+++ b/two.py
@@ -3,2 +3,2 @@ def f():
 keep
-old
+new
"""


@pytest.mark.parametrize("text", [DIFF, NEW_FILE, TWO_FILES, DIFF.replace("\n", "\r\n")])
def test_a_non_empty_unified_diff_passes(text: str) -> None:
    assert ok("git_diff.patch", text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "this is not a diff\n",
        "--- a/x.py\n+++ b/x.py\n",
        "diff --git a/x b/x\n",
        "Binary files a/img.png and b/img.png differ\n",
        "@@ -1 +1 @@\n-a\n+b\n",
        "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-a\n+b\n",
        "--- a/x\n+++ b/x\n@@ garbage @@\n-a\n",
    ],
    ids=lambda t: repr(t[:24]),
)
def test_empty_header_only_or_garbage_diffs_fail(text: str) -> None:
    assert not ok("git_diff.patch", text)


def test_a_diff_that_is_not_utf8_fails() -> None:
    assert check_artifact("git_diff.patch", DIFF.encode() + b"\xff") == ["not UTF-8 text"]


# ---------------------------------------------------------------- review rubric


def test_a_rubric_with_every_dimension_at_the_threshold_passes() -> None:
    assert ok("review_rubric.json", rubric(3))
    assert ok("review_rubric.json", rubric(5, security=3))


def test_a_dimension_below_its_threshold_fails_naming_it() -> None:
    problems = check_artifact("review_rubric.json", rubric(5, governance=2).encode())
    assert len(problems) == 1 and "governance" in problems[0]


def test_a_missing_dimension_fails() -> None:
    doc = json.loads(rubric())
    del doc["dimensions"]["performance"]
    problems = check_artifact("review_rubric.json", json.dumps(doc).encode())
    assert len(problems) == 1 and "performance" in problems[0]


@pytest.mark.parametrize("score", [0, 6, "5", 4.5, True, None])
def test_a_score_outside_one_to_five_or_not_an_integer_fails(score: object) -> None:
    doc = json.loads(rubric())
    doc["dimensions"]["readability"]["score"] = score
    assert not ok("review_rubric.json", json.dumps(doc))


def test_rubric_thresholds_are_configurable() -> None:
    data = rubric(3).encode()
    assert check_artifact("review_rubric.json", data, {"security": 4}) != []
    assert check_artifact("review_rubric.json", data, {"security": 3}) == []
    # Only the configured dimensions are required.
    only = json.dumps({"dimensions": {"security": {"score": 4}}}).encode()
    assert check_artifact("review_rubric.json", only, {"security": 4}) == []


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"dimensions": []}', "{}", "[" * 100_000, '{"dimensions": NaN}'],
    ids=lambda t: repr(t[:16]),
)
def test_a_rubric_that_is_not_the_documented_json_fails_without_raising(text: str) -> None:
    assert not ok("review_rubric.json", text)


def test_every_dimension_of_the_design_is_required_by_default() -> None:
    for dim in DIMENSIONS:
        doc = json.loads(rubric())
        del doc["dimensions"][dim]
        assert not ok("review_rubric.json", json.dumps(doc))


# ---------------------------------------------------------------- smoke checks


def test_smoke_results_pass_only_when_every_check_passes() -> None:
    assert ok("smoke_test_results.json", SMOKE_OK)
    problems = check_artifact("smoke_test_results.json", SMOKE_FAIL.encode())
    assert len(problems) == 1 and "latency" in problems[0]


@pytest.mark.parametrize(
    "doc",
    [
        {"checks": []},
        {},
        {"checks": [{"name": "a"}]},
        {"checks": [{"name": "", "passed": True}]},
        {"checks": [{"name": "a", "passed": "yes"}]},
        {"checks": [{"name": "a", "passed": 1}]},
        {"checks": {"name": "a", "passed": True}},
    ],
)
def test_smoke_results_of_the_wrong_shape_fail(doc: object) -> None:
    assert not ok("smoke_test_results.json", json.dumps(doc))


# ---------------------------------------------------------------- test results


def results(**changes: object) -> str:
    doc: dict[str, object] = {
        "passed": 10,
        "failed": 0,
        "errors": 0,
        "skipped": 1,
        "exit_code": 0,
        "duration_s": 1.25,
        "subject_sha256": "a" * 64,
        "command": ["python", "-m", "pytest"],
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


def test_test_results_of_a_clean_run_pass_the_content_check() -> None:
    assert ok("test_results.json", results())


@pytest.mark.parametrize(
    "changes",
    [
        {"failed": 1},
        {"errors": 2},
        {"passed": 0},
        {"exit_code": 1},
        {"exit_code": -9, "passed": 0, "reason": "timeout"},
        {"passed": -1},
        {"passed": "10"},
        {"passed": 10.0},
        {"duration_s": -1},
        {"command": "python -m pytest"},
        {"surprise": True},
        {"exit_code": ...},
        {"subject_sha256": ...},
    ],
    ids=str,
)
def test_test_results_with_failures_or_of_the_wrong_shape_fail(changes: dict[str, object]) -> None:
    assert not ok("test_results.json", results(**changes))


def test_the_reason_a_server_run_failed_is_among_the_problems() -> None:
    problems = check_artifact(
        "test_results.json", results(exit_code=127, passed=0, reason="command_not_found").encode()
    )
    assert any("command_not_found" in p for p in problems)
    assert any("127" in p for p in problems)


# ---------------------------------------------------------------- anything else


def test_the_build_log_may_be_anything_and_other_names_need_content() -> None:
    assert ok("build_output.log", b"")
    assert ok("notes.md", "anything")
    assert not ok("notes.md", " \n\t")


NAMES = sorted({n for names in DEFAULT_GATES.values() for n in names} | {"review_rubric.json"})
LINES = st.sampled_from(
    [
        "--- a/x",
        "+++ b/x",
        "@@ -1 +1 @@",
        "@@ -1,2 +1,3 @@",
        "-a",
        "+b",
        " c",
        "diff --git a/x b/x",
        "# Acceptance Criteria",
        "## Problem",
        "- item",
        "```",
        "\\ No newline at end of file",
        '{"checks": [',
        '{"dimensions": {',
        "[",
        "",
    ]
)


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from([*NAMES, "other.txt"]),
    data=st.one_of(st.binary(max_size=512), st.lists(LINES).map(lambda ls: "\n".join(ls).encode())),
)
def test_no_content_makes_a_check_raise(name: str, data: bytes) -> None:
    problems = check_artifact(name, data)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
