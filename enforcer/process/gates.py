"""Evidence gates: which artifacts each phase needs to exit, and the content check of each.

A content check is a pure function of the artifact's bytes returning the list of problems (empty
when valid). It runs when the artifact is recorded, and its verdict is ledgered with it; the gate
then reads the recorded verdicts, epochs, producers and subjects.

    >>> check_artifact("strategy.md", b"# Problem\\nx\\n# Objectives\\n- y\\n")
    []
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from ..config import DEFAULT_THRESHOLDS
from ..phases import Phase

__all__ = [
    "DEFAULT_GATES",
    "RESERVED_SERVER_ARTIFACTS",
    "ReviewRubric",
    "SmokeResults",
    "TestResults",
    "check_artifact",
    "shape_hint",
]

DEFAULT_GATES: dict[Phase, tuple[str, ...]] = {
    Phase.STRATEGIZE: ("strategy.md",),
    Phase.SPEC: ("spec.md",),
    Phase.PLAN: ("plan.md",),
    Phase.THINK: ("edge_cases.md",),
    Phase.IMPLEMENT: ("git_diff.patch",),
    Phase.VERIFY: ("test_results.json", "build_output.log"),
    Phase.REVIEW: ("review_rubric.json",),
    Phase.PR: ("pr_summary.md",),
    Phase.MONITOR: ("smoke_test_results.json",),
}

# Artifacts the VERIFY gate accepts only when the server produced them (verify_run).
RESERVED_SERVER_ARTIFACTS = frozenset({"test_results.json", "build_output.log"})

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


def _text(data: bytes) -> str | list[str]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return ["not UTF-8 text"]


def _norm(heading: str) -> str:
    return " ".join(heading.casefold().split())


def _sections(text: str) -> list[tuple[int, str, list[str]]]:
    """(level, normalised heading, body lines) for every heading; code fences are skipped."""
    out: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out[-1][2].append(line)
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), _norm(m.group(2)), []))
        else:
            out[-1][2].append(line)
    return out


def _list_items(lines: list[str]) -> int:
    """List items outside code fences (a `- x` line inside a fence is code, not an item)."""
    count, fenced = 0, False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and _LIST_ITEM.match(line):
            count += 1
    return count


def _headings(required: tuple[str, ...]) -> Callable[[bytes], list[str]]:
    def check(data: bytes) -> list[str]:
        text = _text(data)
        if isinstance(text, list):
            return text
        present = {h for _, h, _ in _sections(text)}
        return [f"missing heading '{h}'" for h in required if _norm(h) not in present]

    return check


def _spec(data: bytes) -> list[str]:
    text = _text(data)
    if isinstance(text, list):
        return text
    sections = _sections(text)
    for i, (level, heading, body) in enumerate(sections):
        if heading == "acceptance criteria":
            lines = list(body)
            for sub_level, _, sub_body in sections[i + 1 :]:  # include deeper sub-sections
                if sub_level <= level:
                    break
                lines += sub_body
            if _list_items(lines) == 0:
                return ["heading 'Acceptance Criteria' has no list item under it"]
            return []
    return ["missing heading 'Acceptance Criteria'"]


def _min_items(n: int, what: str) -> Callable[[bytes], list[str]]:
    def check(data: bytes) -> list[str]:
        text = _text(data)
        if isinstance(text, list):
            return text
        found = _list_items(text.splitlines())
        return [] if found >= n else [f"needs at least {n} list item(s) ({what}); found {found}"]

    return check


def _diff(data: bytes) -> list[str]:
    text = _text(data)
    if isinstance(text, list):
        return text
    try:
        patch = PatchSet(text)
    except (UnidiffParseError, ValueError, IndexError) as e:
        return [f"not a unified diff: {e}"]
    if not any(len(f) > 0 for f in patch):  # no file (an empty patch), or none with a hunk
        return ["the diff changes nothing (no file with a hunk)"]
    return []


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TestResults(_Strict):
    """test_results.json, written by verify_run."""

    __test__ = False  # not a pytest test class

    passed: Annotated[StrictInt, Field(ge=0)]
    failed: Annotated[StrictInt, Field(ge=0)]
    errors: Annotated[StrictInt, Field(ge=0)]
    skipped: Annotated[StrictInt, Field(ge=0)]
    exit_code: StrictInt
    duration_s: Annotated[float, Field(ge=0)]
    subject_sha256: str | None
    command: list[str]
    # Why verify_run got no usable results (timeout, command_not_found, no_junit_report, ...).
    reason: str | None = None


class _Score(BaseModel):
    model_config = ConfigDict(frozen=True)
    score: Annotated[StrictInt, Field(ge=1, le=5)]
    notes: str = ""


class ReviewRubric(BaseModel):
    model_config = ConfigDict(frozen=True)
    dimensions: dict[str, _Score]


class _Check(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: Annotated[str, Field(min_length=1)]
    passed: StrictBool


class SmokeResults(BaseModel):
    model_config = ConfigDict(frozen=True)
    checks: Annotated[list[_Check], Field(min_length=1)]


def _json_model(model: type[BaseModel], data: bytes) -> BaseModel | list[str]:
    try:
        return model.model_validate(json.loads(data))
    except RecursionError:  # e.g. 2 MB of '[': a refusal, not a crash
        return ["not JSON: nested too deeply"]
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ValidationError):
            return [
                f"{'.'.join(str(p) for p in err['loc']) or '$'}: {err['msg']}" for err in e.errors()
            ][:10]
        return [f"not JSON: {e}"]


def _test_results(data: bytes) -> list[str]:
    parsed = _json_model(TestResults, data)
    if isinstance(parsed, list):
        return parsed
    assert isinstance(parsed, TestResults)
    problems = []
    if parsed.reason:
        problems.append(f"verification failed: {parsed.reason}")
    if parsed.exit_code != 0:
        problems.append(f"exit code {parsed.exit_code}")
    if parsed.failed or parsed.errors:
        problems.append(f"{parsed.failed} failed, {parsed.errors} errors")
    if parsed.passed <= 0:
        problems.append("no test passed")
    return problems


def _rubric(thresholds: Mapping[str, int]) -> Callable[[bytes], list[str]]:
    def check(data: bytes) -> list[str]:
        parsed = _json_model(ReviewRubric, data)
        if isinstance(parsed, list):
            return parsed
        assert isinstance(parsed, ReviewRubric)
        problems = []
        for dim, minimum in thresholds.items():
            got = parsed.dimensions.get(dim)
            if got is None:
                problems.append(f"dimension '{dim}' missing")
            elif got.score < minimum:
                problems.append(f"dimension '{dim}' scored {got.score} < threshold {minimum}")
        return problems

    return check


def _smoke(data: bytes) -> list[str]:
    parsed = _json_model(SmokeResults, data)
    if isinstance(parsed, list):
        return parsed
    assert isinstance(parsed, SmokeResults)
    failed = [c.name for c in parsed.checks if not c.passed]
    return [f"checks failed: {', '.join(failed)}"] if failed else []


def _non_empty(data: bytes) -> list[str]:
    return [] if data.strip() else ["empty"]


_VALIDATORS: dict[str, Callable[[bytes], list[str]]] = {
    "strategy.md": _headings(("Problem", "Objectives")),
    "spec.md": _spec,
    "plan.md": _min_items(2, "the steps of the plan"),
    "edge_cases.md": _min_items(1, "the edge cases"),
    "git_diff.patch": _diff,
    "test_results.json": _test_results,
    "build_output.log": lambda _data: [],
    "pr_summary.md": _headings(("Summary", "Risks", "Rollback")),
    "smoke_test_results.json": _smoke,
}


def check_artifact(
    name: str, data: bytes, thresholds: Mapping[str, int] | None = None
) -> list[str]:
    """Content problems of artifact `name` (empty list: valid). Unknown names need content."""
    if name == "review_rubric.json":
        return _rubric(thresholds or DEFAULT_THRESHOLDS)(data)
    return _VALIDATORS.get(name, _non_empty)(data)


_SHAPES: dict[str, str] = {
    "strategy.md": "markdown with headings '# Problem' and '# Objectives'",
    "spec.md": "markdown with a heading '# Acceptance Criteria' followed by list items",
    "plan.md": "markdown with a list of at least two steps",
    "edge_cases.md": "markdown with at least one list item",
    "git_diff.patch": "a non-empty unified diff (e.g. `git diff` output)",
    "test_results.json": "written by the server: call verify_run (agent-written results do not"
    " count)",
    "build_output.log": "written by the server: call verify_run",
    "review_rubric.json": '{"dimensions": {"readability": {"score": 1-5, "notes": "..."},'
    ' "maintainability": ..., "performance": ..., "security": ..., "governance": ...}}',
    "pr_summary.md": "markdown with headings '# Summary', '# Risks', '# Rollback'",
    "smoke_test_results.json": '{"checks": [{"name": "...", "passed": true}, ...]} (non-empty)',
}


def shape_hint(name: str) -> str:
    """What an agent should put in artifact `name`."""
    return _SHAPES.get(name, "any non-empty content")
