"""Which ledger entries an auditor's sections are made of, chosen by entry type alone, so the
export knows nothing of the services that wrote them (modules and policy add types; the
sections pick them up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SECTIONS", "facts_of", "policy_hashes"]

# section -> (title, entry-type prefixes); an entry may appear in several sections.
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "policies": ("Policy changes", ("policy.",)),
    "approvals": ("Approvals", ("approval.", "promotion.approved", "promotion.rejected")),
    "exceptions": ("Exceptions", ("exception.",)),
    "controls": ("Freeze and pause history", ("control.",)),
    "promotions": ("Promotions", ("promotion.",)),
    "installs": ("Installs", ("module.registered", "module.installed")),
    "rollbacks": ("Rollbacks", ("module.rolled_back",)),
    "leases": ("Leases broken by a supervisor", ("lease.broken",)),
    "rebaselines": ("Prompt re-baselines", ("prompt.rebaselined",)),
    "verifications": (
        "Verification results",
        ("evidence.recorded", "draft.validated", "draft.validation_failed"),
    ),
}
# Sections that keep only some entries of a type: the test results the server itself produced
# (verify_run's test_results.json; an agent's own evidence is no verification result).
_ONLY: dict[str, Callable[[dict[str, Any]], bool]] = {
    "verifications": lambda e: (
        e["type"] != "evidence.recorded"
        or (e["data"].get("producer") == "server" and e["data"].get("name") == "test_results.json")
    ),
}


def _matches(kind: str, prefixes: tuple[str, ...]) -> bool:
    return any(kind == p or (p.endswith(".") and kind.startswith(p)) for p in prefixes)


def facts_of(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each section's entries (seq, ts, actor, type, subject, data), in ledger order."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS}
    for e in entries:
        for name, (_, prefixes) in SECTIONS.items():
            keep = _ONLY.get(name)
            if _matches(str(e["type"]), prefixes) and (keep is None or keep(e)):
                out[name].append(
                    {k: e[k] for k in ("seq", "ts", "actor", "type", "subject", "data")}
                )
    return out


def _hashes(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            if k == "policy_set_hash" and isinstance(v, str):
                found.append(v)
            else:
                found.extend(_hashes(v))
        return found
    if isinstance(value, list):
        return [h for item in value for h in _hashes(item)]
    return []


def policy_hashes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every policy_set_hash the range's decisions name, with the first and last seq naming it."""
    seen: dict[str, dict[str, Any]] = {}
    for e in entries:
        for h in _hashes({"data": e["data"], "refs": e.get("refs", {})}):
            row = seen.setdefault(h, {"policy_set_hash": h, "first_seq": e["seq"], "decisions": 0})
            row["last_seq"] = e["seq"]
            row["decisions"] += 1
    return list(seen.values())
