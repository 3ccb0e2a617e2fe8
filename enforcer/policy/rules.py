"""A policy set: the validated ``[policy]`` section compiled for decisions, with its hash.

`PolicySet.from_config` compiles every module's path rules and windows once (a policy set is
immutable; a changed file makes a new one), and `policy_set_hash` is the sha256 of the
canonical policy (RFC 8785 via `ledger.canonical`), recorded with every decision it takes part
in. `assess_risk` gives a draft's risk class from its changed paths and diff stats.

    ps = PolicySet.from_config(PolicyConfig())
    ps.policy_set_hash                      # 64 hex digits
    assess_risk(ps, "skills", paths, files=3, added=10, removed=2, lifted=frozenset())
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..ledger import canonical
from ..policy_config import RISK_CLASSES, PolicyConfig, RiskClass, canonical_policy
from ..windows import Windows
from .paths import PathRule, Paths

__all__ = ["ModuleRules", "PolicySet", "Risk", "assess_risk", "risk_rank"]

SHOWN = 20  # paths named in a decision (the count says how many there were)


def risk_rank(risk: str | None) -> int:
    """LOW 0, MEDIUM 1, HIGH 2; an unknown class ranks as HIGH (fail closed)."""
    for index, name in enumerate(RISK_CLASSES):
        if risk == name:
            return index
    return len(RISK_CLASSES) - 1


@dataclass(frozen=True, slots=True)
class ModuleRules:
    """One module's compiled rules (the global ``[policy.risk] high_paths`` included)."""

    forbidden: PathRule
    locked: PathRule
    high: PathRule
    windows: Windows


@dataclass(frozen=True)
class PolicySet:
    config: PolicyConfig
    policy_set_hash: str
    _modules: dict[str, ModuleRules] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: PolicyConfig) -> PolicySet:
        digest = hashlib.sha256(canonical.encode(canonical_policy(config))).hexdigest()
        ps = cls(config, digest)
        ps.rules("")  # compile the shared part now: a bad pattern fails at load, not at use
        for module in config.modules:
            ps.rules(module)
        return ps

    def rules(self, module: str) -> ModuleRules:
        found = self._modules.get(module)
        if found is None:
            mod = self.config.modules.get(module)
            high = list(self.config.risk.high_paths)
            if mod is None:
                found = ModuleRules(PathRule([]), PathRule([]), PathRule(high), Windows(()))
            else:
                found = ModuleRules(
                    PathRule(mod.forbidden_paths),
                    PathRule(mod.locked_paths),
                    PathRule(high + list(mod.high_paths)),
                    Windows.parse(list(mod.install_windows)),
                )
            self._modules[module] = found
        return found

    def auto_approved(self, risk: RiskClass) -> bool:
        return risk in self.config.auto_approve

    def rollback_window_s(self, risk: str | None) -> int:
        """The window for `risk`; for a version of unknown risk, the shortest (fail closed)."""
        windows = self.config.rollback_window_s
        if risk in RISK_CLASSES:
            return int(getattr(windows, str(risk)))
        return min(windows.LOW, windows.MEDIUM, windows.HIGH)


@dataclass(frozen=True, slots=True)
class Risk:
    """A draft's risk class, the rules that raised it, and those an exception kept from it."""

    level: RiskClass
    raised_by: tuple[str, ...]
    lifted: tuple[str, ...]
    found: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"risk": self.level, "raised_by": list(self.raised_by), **self.found}


def assess_risk(
    ps: PolicySet,
    module: str,
    paths: Paths | tuple[str, ...],
    *,
    files: int,
    added: int,
    removed: int,
    lifted: frozenset[str],
) -> Risk:
    """LOW unless a rule raises it: a high path makes it HIGH; more changed lines (added +
    removed) than ``medium_changed_lines`` or more files than ``medium_files`` make it MEDIUM."""
    risk = ps.config.risk
    raised: list[str] = []
    kept: list[str] = []
    found: dict[str, Any] = {}
    high = ps.rules(module).high.matches(paths)
    if high:
        (kept if "high_paths" in lifted else raised).append("high_paths")
        found["high_paths"] = [{"path": p, "pattern": g} for p, g in high[:SHOWN]]
        found["high_paths_count"] = len(high)
    lines = added + removed
    if lines > risk.medium_changed_lines:
        (kept if "medium_changed_lines" in lifted else raised).append("medium_changed_lines")
        found["changed_lines"] = lines
    if files > risk.medium_files:
        (kept if "medium_files" in lifted else raised).append("medium_files")
        found["changed_files"] = files
    level: RiskClass = "LOW"
    if "high_paths" in raised:
        level = "HIGH"
    elif raised:
        level = "MEDIUM"
    return Risk(level, tuple(raised), tuple(kept), found)
