"""The policy: the governed modules' hook (`modules.policy_hook.PolicyHook`) over ``[policy]``.

One `decide` per point, reading what it needs in the caller's transaction (exceptions,
approval requests, today's promotions, the active install) and writing nothing:

    edit      forbidden_paths, locked_paths                      → POLICY_DENIED
    promote   forbidden and locked paths; the risk class (high_paths, medium_changed_lines,
              medium_files); max_promotions_per_day per module and per actor; then
              auto_approve, or an approval request (`approval_step`) → APPROVAL_REQUIRED
    install   install_windows (UTC)                  → POLICY_DENIED, the next window in the hint
    rollback  rollback_window_s of the active version's risk class → FORBIDDEN for a non-admin

An active exception for the module lifts the rule it names; a decision names every exception
that changed it. `policy_check` (the dry run) calls the same `decide` over a read snapshot, so
it answers exactly what a promotion would decide at that moment.

    policy = Policy(PolicySource(config.policy, path), clock)
    decision = policy.decide(PolicyRequest("promote", "skills", "skills-d1", ...), tx)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, rfc3339
from ..modules.policy_hook import Decision, PolicyRequest
from ..store import Tx
from . import exceptions
from .approvals import latest_for_draft
from .asking import approval_step
from .exceptions import ExceptionRow
from .limits import active_install, promotions_today
from .paths import Paths
from .rules import SHOWN, PolicySet, assess_risk
from .source import PolicySource

__all__ = ["Policy"]


def duration(seconds: float) -> str:
    """'2d 3h', '5h 20m', '45m', '30s' — for messages and hints."""
    s = int(max(0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{s}s"


@dataclass
class Case:
    """One decision in the making: what it reads, and the exceptions that changed it."""

    ps: PolicySet
    request: PolicyRequest
    tx: Tx
    now: datetime
    lifted: dict[str, ExceptionRow]
    paths: Paths
    used: dict[str, ExceptionRow] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def now_ts(self) -> str:
        return rfc3339(self.now)

    def lift(self, rule: str) -> bool:
        """True when an active exception lifts `rule`; it is then named in the decision."""
        found = self.lifted.get(rule)
        if found is not None:
            self.used[found.id] = found
        return found is not None

    def done(self, decision: Decision) -> Decision:
        return replace(
            decision,
            details={**self.details, **decision.details},
            exceptions=tuple(e.brief() for e in self.used.values()),
        )

    def allow(self, reason: str, *rules: str, risk: str | None = None, **more: Any) -> Decision:
        d = Decision("allow", self.ps.policy_set_hash, reason, risk=risk, rules=rules)
        return self.done(replace(d, **more))

    def deny(self, reason: str, hint: str, *rules: str, **more: Any) -> Decision:
        d = Decision("deny", self.ps.policy_set_hash, reason, rules=rules, hint=hint)
        return self.done(replace(d, **more))

    def ask(self, reason: str, hint: str, approval: dict[str, Any], **more: Any) -> Decision:
        d = Decision("needs_approval", self.ps.policy_set_hash, reason, approval, hint=hint)
        return self.done(replace(d, **more))


class Policy:
    """Decides every request by the policy in force (re-read from its file on each one)."""

    def __init__(self, source: PolicySource, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self._points: dict[str, Callable[[Case], Decision]] = {
            "edit": self._edit,
            "promote": self._promote,
            "install": self._install,
            "rollback": self._rollback,
        }

    def decide(self, request: PolicyRequest, tx: Tx) -> Decision:
        ps, failure = self.source.current()
        now = self.clock.now()
        lifted = exceptions.active(tx, request.module, rfc3339(now))
        case = Case(ps, request, tx, now, lifted, Paths(request.paths))
        if failure is not None:
            case.details["policy_file_error"] = failure.as_dict()
        decision = self._points[request.point](case)
        return replace(decision, notes=self.source.notes(tx, ps, failure))

    def approval_of(self, draft: str, tx: Tx) -> dict[str, Any] | None:
        row = latest_for_draft(tx, draft)
        return None if row is None else row.as_dict(rfc3339(self.clock.now()))

    # the points

    def _paths(self, case: Case) -> Decision | None:
        """forbidden_paths, then locked_paths, over the paths the request changes."""
        r = case.request
        rules = case.ps.rules(r.module)
        for name, rule, what in (
            ("forbidden_paths", rules.forbidden, "forbidden"),
            ("locked_paths", rules.locked, "locked"),
        ):
            hits = rule.matches(case.paths)
            if not hits or case.lift(name):
                continue
            path, pattern = hits[0]
            undo = (
                "leave these paths out of the draft"
                if r.point == "edit"
                else "undo the draft's change to these paths (draft_write the old content back"
                " or draft_delete_file), then draft_validate"
            )
            return case.deny(
                f"{path!r} is {what} in module {r.module} ({name}: {pattern!r})"
                + (f" and {len(hits) - 1} more path(s)" if len(hits) > 1 else ""),
                f"{undo}; policy_check(draft) lists them; a supervisor may grant an exception",
                name,
                details={
                    "paths": [{"path": p, "pattern": g} for p, g in hits[:SHOWN]],
                    "paths_count": len(hits),
                },
            )
        return None

    def _edit(self, case: Case) -> Decision:
        return self._paths(case) or case.allow("no path rule stops this edit")

    def _promote(self, case: Case) -> Decision:
        denied = self._paths(case)
        if denied is not None:
            return denied
        r, ps = case.request, case.ps
        kinds = ("high_paths", "medium_changed_lines", "medium_files")
        risk = assess_risk(
            ps,
            r.module,
            case.paths,
            files=r.files,
            added=r.added,
            removed=r.removed,
            lifted=frozenset(k for k in kinds if k in case.lifted),
        )
        for rule in risk.lifted:
            case.lift(rule)
        case.details.update(risk.as_dict())
        # Once installed, an agent may roll the version back for this long (then an admin).
        case.details["rollback_window_s"] = ps.rollback_window_s(risk.level)
        case.details["stats"] = {"files": r.files, "added": r.added, "removed": r.removed}
        limit = ps.config.max_promotions_per_day
        used = promotions_today(case.tx, r.module, r.actor, case.now)
        case.details["limits"] = used.as_dict(r.actor, limit)
        over = [
            f"module {r.module} has had {used.module}" if used.module >= limit else "",
            f"{r.actor} has made {used.actor}" if used.actor >= limit else "",
        ]
        over = [o for o in over if o]
        if over and not case.lift("max_promotions_per_day"):
            wait = datetime.fromisoformat(used.resets_at) - case.now
            return case.deny(
                f"{' and '.join(over)} promotion(s) today (UTC); the limit is {limit} a day",
                f"the count restarts at {used.resets_at} (in {duration(wait.total_seconds())});"
                " a supervisor may grant an exception",
                "max_promotions_per_day",
                risk=risk.level,
            )
        rules = risk.raised_by
        if ps.auto_approved(risk.level):
            return case.allow(
                f"{risk.level} is approved automatically", *rules, "auto_approve", risk=risk.level
            )
        if case.lift("approval"):
            return case.allow(
                f"{risk.level} needs approval, lifted by an exception", *rules, risk=risk.level
            )
        return approval_step(case, risk)

    def _install(self, case: Case) -> Decision:
        r = case.request
        windows = case.ps.rules(r.module).windows
        if not windows.windows:
            return case.allow("module has no install windows: always open")
        texts = [w.text for w in windows.windows]
        case.details["install_windows"] = texts
        live = case.tx.one("SELECT active_version FROM modules WHERE module = ?", (r.module,))
        if live is None or live[0] is None:
            # Registration's first install: nothing is live yet that a window protects.
            return case.allow("the module's first install", "install_windows")
        if windows.open_at(case.now):
            closes = windows.closes_at(case.now)
            case.details["closes_at"] = None if closes is None else rfc3339(closes)
            return case.allow("inside an install window", "install_windows")
        opens = windows.next_opening(case.now)
        assert opens is not None  # there are windows
        case.details["next_window"] = rfc3339(opens)
        if case.lift("install_windows"):
            return case.allow("outside the install windows, lifted by an exception")
        wait = duration((opens - case.now).total_seconds())
        return case.deny(
            f"module {r.module} installs only inside {', '.join(texts)} (UTC)",
            f"the next install window opens at {rfc3339(opens)} (in {wait}); install then",
            "install_windows",
        )

    def _rollback(self, case: Case) -> Decision:
        r = case.request
        installed = active_install(case.tx, r.module)
        if installed is None:
            return case.allow("nothing is installed to roll back from")
        window = case.ps.rollback_window_s(installed.risk)
        ends = installed.at + timedelta(seconds=window)
        case.details["rollback"] = {
            "active_version": installed.version,
            "installed_at": rfc3339(installed.at),
            "risk": installed.risk,
            "window_s": window,
            "window_ends_at": rfc3339(ends),
        }
        if case.now <= ends:
            return case.allow("inside the rollback window", "rollback_window_s")
        if r.role == "admin":
            return case.allow("past the rollback window: an admin may", "rollback_window_s")
        if case.lift("rollback_window_s"):
            return case.allow("past the rollback window, lifted by an exception")
        risk = installed.risk or "unknown risk"
        ago = duration((case.now - installed.at).total_seconds())
        return case.deny(
            f"v{installed.version} ({risk}) was installed {ago} ago; its rollback window of"
            f" {duration(window)} ended at {rfc3339(ends)}: only an"
            " admin may roll back now",
            f"ask a supervisor (phasegate module rollback {r.module} --reason R)",
            "rollback_window_s",
            code="FORBIDDEN",
        )
