"""Content checks at the edges a weakened comparison or a dropped branch would pass: tests
written against the mutants that survived tests/enforcer/process/test_gates.py
(scripts/mutation.py, target enforcer/process/gates.py). Each asserts the problems a check
returns, not only whether it passes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from enforcer.process.gates import ReviewRubric, SmokeResults, TestResults, check_artifact

RESULTS: dict[str, Any] = {
    "passed": 3,
    "failed": 0,
    "errors": 0,
    "skipped": 0,
    "exit_code": 0,
    "duration_s": 0.5,
    "subject_sha256": None,
    "command": ["pytest"],
}


def results(**changed: Any) -> bytes:
    return json.dumps(RESULTS | changed).encode()


def test_one_passing_test_is_enough() -> None:
    assert check_artifact("test_results.json", results()) == []
    assert check_artifact("test_results.json", results(passed=1)) == []
    assert check_artifact("test_results.json", results(passed=0)) == ["no test passed"]


def test_a_run_killed_by_a_signal_fails_on_its_negative_exit_code() -> None:
    assert check_artifact("test_results.json", results(exit_code=-9)) == ["exit code -9"]


def test_a_schema_problem_names_its_field_or_the_document_itself() -> None:
    assert check_artifact("test_results.json", results(passed="3")) == [
        "passed: Input should be a valid integer"
    ]
    (problem,) = check_artifact("test_results.json", b"[1, 2]")
    assert problem.startswith("$: ")  # the whole document is the wrong type


def test_at_most_ten_schema_problems_are_reported() -> None:
    data = json.dumps({f"extra{i}": i for i in range(4)}).encode()  # 8 missing, 4 extra
    problems = check_artifact("test_results.json", data)
    assert len(problems) == 10
    assert problems[0] == "passed: Field required"


SPEC_AFTER_ANOTHER_SECTION = "## Background\nprose\n## Acceptance Criteria\n- it adds\n"
SPEC_ITEM_UNDER_A_LATER_SECTION = (
    "## Acceptance Criteria\nprose only\n## Notes\n### Deeper\n- not a criterion\n"
)


def test_only_the_acceptance_criteria_section_is_read_for_its_items() -> None:
    # A section before it (whose heading sorts after "acceptance criteria") is not it.
    assert check_artifact("spec.md", SPEC_AFTER_ANOTHER_SECTION.encode()) == []
    # Its own sub-sections count; a sibling's sub-section does not.
    assert check_artifact("spec.md", SPEC_ITEM_UNDER_A_LATER_SECTION.encode()) == [
        "heading 'Acceptance Criteria' has no list item under it"
    ]
    nested = "## Acceptance Criteria\nprose\n### Core\n- it adds\n## Notes\n"
    assert check_artifact("spec.md", nested.encode()) == []


def test_a_code_fence_ends_and_the_document_goes_on() -> None:
    fenced = "```\n# not a heading\n```\n## Acceptance Criteria\n- it adds\n"
    assert check_artifact("spec.md", fenced.encode()) == []
    inside = "## Acceptance Criteria\n```\n- code, not an item\n```\n"
    assert check_artifact("spec.md", inside.encode()) == [
        "heading 'Acceptance Criteria' has no list item under it"
    ]


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (TestResults, RESULTS, "passed"),
        (ReviewRubric, {"dimensions": {"security": {"score": 5}}}, "dimensions"),
        (SmokeResults, {"checks": [{"name": "up", "passed": True}]}, "checks"),
    ],
    ids=["test-results", "rubric", "smoke"],
)
def test_parsed_artifacts_cannot_be_changed(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    parsed = model.model_validate(data)
    with pytest.raises(ValidationError):
        setattr(parsed, field, None)


def test_the_nested_records_of_a_parsed_artifact_cannot_be_changed() -> None:
    rubric = ReviewRubric.model_validate({"dimensions": {"security": {"score": 5}}})
    with pytest.raises(ValidationError):
        rubric.dimensions["security"].score = 1  # type: ignore[misc]
    smoke = SmokeResults.model_validate({"checks": [{"name": "up", "passed": True}]})
    with pytest.raises(ValidationError):
        smoke.checks[0].passed = False  # type: ignore[misc]
