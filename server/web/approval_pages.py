"""The approvals queue on the page: each request's risk, the rules that matched, its diff stats
and expiry, with approve and reject (and a note) for an admin — the same
``Enforcer.approvals`` calls as ``phasegate approve|reject ID --note N``, ledgered with the
signed-in actor. An approved request lets the agent's next ``draft_promote`` succeed.

Below the queue, the policy exceptions (active, expired and revoked): which rule is lifted for
which module, until when, why and by whom. They are granted and revoked with ``phasegate
exception grant|revoke``, where the reason is typed at a terminal the supervisor controls.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .actions import done
from .auth import admin_form, signed_in
from .context import WebState
from .render import page

__all__ = ["approvals_page", "decide"]

_LIMIT = 200


async def approvals_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    e = web.enforcer()
    data = {
        "head": await e.ledger.head(),
        "approvals": await e.approvals.listing(_LIMIT),
        "exceptions": (await e.exceptions.listing(everything=True))[:_LIMIT],
        "controls": await e.controls(),
    }
    return page(request, "approvals.html", data, view=view)


async def decide(request: Request, web: WebState) -> Response:
    """POST /approvals/{id}/{approve|reject} with a note."""
    viewer, form = await admin_form(request, web)
    approval = request.path_params["approval"]
    approvals = web.enforcer().approvals
    verb = request.path_params["verb"]
    if verb not in ("approve", "reject"):
        from enforcer.errors import NotFoundError

        raise NotFoundError(f"no action {verb!r} on an approval request", details={})
    decide_with = approvals.approve if verb == "approve" else approvals.reject
    result = await decide_with(viewer.caller(), approval, form.get("note", ""))
    return done(request, form, result)
