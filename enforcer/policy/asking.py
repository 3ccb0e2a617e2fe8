"""The approval step of a promotion decision: find the draft's request, or open a new one.

The latest request of the draft counts when it was made for the same ``diff_sha256`` and at a
risk class no lower than the draft's now:

    APPROVED   allow (the decision carries the approval: the attestation names it)
    REJECTED   deny: this diff was refused; a changed draft opens a new request
    PENDING    needs approval, the same request (nothing new is opened)
    otherwise  needs approval, a new request that supersedes the latest one (which becomes
               EXPIRED, or STALE when the draft or its risk changed since)

The new request's id, times and bindings are fixed here, in the decision, and the
``promotion.requested`` entry that records the refusal carries them into the projection.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..clock import rfc3339
from ..modules.policy_hook import Decision
from .approvals import latest_for_draft, requests_for_draft
from .rules import Risk, risk_rank

if TYPE_CHECKING:
    from .engine import Case

__all__ = ["approval_step"]


def _hint(approval: str) -> str:
    return (
        f"a supervisor decides request {approval} (phasegate approve {approval} --note N);"
        " draft_show shows its state; once approved, the same draft_promote call succeeds"
    )


def approval_step(case: Case, risk: Risk) -> Decision:
    r = case.request
    now_ts = case.now_ts
    draft = r.draft or ""
    diff = r.diff_sha256 or ""
    rules = (*risk.raised_by, "approval")
    latest = latest_for_draft(case.tx, draft)
    supersedes: dict[str, Any] | None = None
    if latest is not None:
        status = latest.status_at(now_ts)
        same = latest.diff_sha256 == diff and risk_rank(risk.level) <= risk_rank(latest.risk)
        view = {**latest.as_dict(now_ts), "opened": False, "supersedes": None}
        if same and status == "APPROVED":
            return case.allow(
                f"{risk.level}: request {latest.id} approved by {latest.decided_by}",
                *rules,
                risk=risk.level,
                approval=view,
            )
        if same and status == "REJECTED":
            return case.deny(
                f"request {latest.id} for this diff was rejected by {latest.decided_by}:"
                f" {latest.note}",
                "change the draft (a new diff opens a new request) or draft_discard it",
                *rules,
                risk=risk.level,
                approval=view,
            )
        if same and status == "PENDING":
            return case.ask(
                f"{risk.level} needs a person's approval: request {latest.id} is pending",
                _hint(latest.id),
                view,
                risk=risk.level,
                rules=rules,
            )
        if status in ("PENDING", "APPROVED"):
            status = "STALE"  # open, but for another diff or a lower risk class
        supersedes = {"id": latest.id, "status": status}
    approval = f"{draft}-r{requests_for_draft(case.tx, draft) + 1}"
    expiry = case.ps.config.approval_expiry_s
    request = {
        "id": approval,
        "status": "PENDING",
        "opened": True,
        "module": r.module,
        "draft": draft,
        "task": r.task,
        "diff_sha256": diff,
        "risk": risk.level,
        "rules": list(risk.raised_by),
        "files": r.files,
        "added": r.added,
        "removed": r.removed,
        "requested_by": r.actor,
        "requested_at": now_ts,
        "expires_at": rfc3339(case.now + timedelta(seconds=expiry)),
        "decided_by": None,
        "decided_at": None,
        "note": None,
        "version": None,
        "supersedes": supersedes,
    }
    return case.ask(
        f"{risk.level} needs a person's approval: request {approval} is open",
        _hint(approval),
        request,
        risk=risk.level,
        rules=rules,
    )
