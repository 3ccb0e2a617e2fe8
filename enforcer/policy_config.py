"""The ``[policy]`` section of ``phasegate.toml`` (DESIGN.md, Policy and approvals) — a leaf.

`config.Config` holds it as ``policy``; pydantic refuses unknown keys naming them (e.g.
``policy.risk.hgh_paths: Extra inputs are not permitted``), and each path pattern and install
window is checked when the file loads, so a policy that loaded is one the engine can apply.
The engine (``enforcer/policy/``) compiles it; `canonical_policy` is what ``policy_set_hash``
hashes (every default written out, so two files that mean the same hash the same).

    [policy]
    auto_approve = ["LOW"]
    [policy.risk]
    high_paths = ["**/auth/**"]
    [policy.modules.skills]
    forbidden_paths = ["secrets/**"]
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pathspec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .names import check_module_name
from .windows import parse_window

__all__ = [
    "RISK_CLASSES",
    "RULES",
    "ModulePolicy",
    "PolicyConfig",
    "RiskClass",
    "RiskConfig",
    "RollbackWindows",
    "canonical_policy",
]

RiskClass = Literal["LOW", "MEDIUM", "HIGH"]
RISK_CLASSES: tuple[RiskClass, ...] = ("LOW", "MEDIUM", "HIGH")  # in rising order

# The rules an admin may lift for one module with a time-bound exception (phasegate exception).
RULES: dict[str, str] = {
    "forbidden_paths": "a draft may not touch these paths",
    "locked_paths": "these paths may not be edited in a draft",
    "high_paths": "a change to these paths makes a draft HIGH",
    "medium_changed_lines": "more changed lines make a draft MEDIUM",
    "medium_files": "more changed files make a draft MEDIUM",
    "approval": "a risk class outside auto_approve needs a person's approval",
    "max_promotions_per_day": "promotions per module and per actor per UTC day",
    "install_windows": "installs only inside the module's windows",
    "rollback_window_s": "after the window only an admin may roll back",
}

_DAY = 86_400


def _glob(pattern: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
        raise ValueError(f"{pattern!r} holds a control character")
    try:
        compiled = pathspec.GitIgnoreSpec.from_lines([pattern]).patterns
    except ValueError as e:  # GitIgnorePatternError is a ValueError
        raise ValueError(f"{pattern!r} is not a gitignore-style pattern: {e}") from e
    if not compiled or compiled[0].include is None:
        raise ValueError(f"{pattern!r} matches nothing (blank, or a '#' comment)")
    return pattern


def _window(text: str) -> str:
    parse_window(text)
    return text


def _module(name: str) -> str:
    try:
        check_module_name(name)
    except Exception as e:  # InvalidArgumentError: pydantic wants a ValueError
        raise ValueError(f"{name!r} is not a module name") from e
    return name


Glob = Annotated[str, AfterValidator(_glob)]
WindowText = Annotated[str, AfterValidator(_window)]
ModuleName = Annotated[str, AfterValidator(_module)]
Seconds = Annotated[int, Field(ge=0, le=365 * _DAY)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RiskConfig(_Section):
    high_paths: list[Glob] = []  # a change to a matching path makes the draft HIGH
    medium_changed_lines: Annotated[int, Field(ge=0)] = 50  # more (added + removed): MEDIUM
    medium_files: Annotated[int, Field(ge=0)] = 10  # more changed files: MEDIUM


class RollbackWindows(_Section):
    """Seconds after an install during which an agent may roll it back, by risk class."""

    LOW: Seconds = 3 * _DAY
    MEDIUM: Seconds = 7 * _DAY
    HIGH: Seconds = 30 * _DAY


class ModulePolicy(_Section):
    forbidden_paths: list[Glob] = []  # a draft may not touch these: POLICY_DENIED
    locked_paths: list[Glob] = []  # edits refused in drafts: POLICY_DENIED
    high_paths: list[Glob] = []  # in addition to [policy.risk] high_paths
    install_windows: list[WindowText] = []  # UTC; none = always open


class PolicyConfig(_Section):
    auto_approve: list[RiskClass] = ["LOW"]  # risk classes promoted without a person
    approval_expiry_s: Annotated[int, Field(ge=60, le=30 * _DAY)] = _DAY
    max_promotions_per_day: Annotated[int, Field(ge=0, le=100_000)] = 20  # per module; per actor
    rollback_window_s: RollbackWindows = RollbackWindows()
    risk: RiskConfig = RiskConfig()
    modules: dict[ModuleName, ModulePolicy] = {}


def canonical_policy(policy: PolicyConfig) -> dict[str, Any]:
    """The policy as a ledger value (sorted sets, defaults written out) for hashing."""
    data = policy.model_dump(mode="json")
    data["auto_approve"] = sorted(set(data["auto_approve"]), key=RISK_CLASSES.index)
    return {"v": 1, "policy": data}
