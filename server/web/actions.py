"""What an admin does from the page: the same enforcer verbs as the CLI, with the signed-in
actor as the caller, so each is checked and ledgered exactly as ``phasegate freeze`` is.

Every form carries its session's CSRF token and a ``back`` path; after the action the browser
is sent back there (303), or, with ``?format=json``, gets the enforcer's result.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from enforcer.model import check_task_id

from .auth import admin_form, safe_next
from .context import WebState
from .render import wants_json

__all__ = ["break_lease", "done", "set_control"]

_CONTROLS = {
    ("freeze", "on"): ("freeze", True),
    ("freeze", "off"): ("freeze", False),
    ("pause", "on"): ("promotions_paused", True),
    ("pause", "off"): ("promotions_paused", False),
}


def done(request: Request, form: dict[str, str], result: Any) -> Response:
    if wants_json(request):
        return JSONResponse(result)
    return RedirectResponse(safe_next(form.get("back")), status_code=303)


async def set_control(request: Request, web: WebState) -> Response:
    """POST /controls/{switch}/{on|off}: freeze or unfreeze, pause or resume promotions."""
    viewer, form = await admin_form(request, web)
    key = (request.path_params["switch"], request.path_params["state"])
    if key not in _CONTROLS:
        from enforcer.errors import NotFoundError

        raise NotFoundError(f"no switch {key[0]}/{key[1]}", hint="", details={})
    control, active = _CONTROLS[key]
    result = await web.enforcer().set_control(
        viewer.caller(), control, active, form.get("reason", "")
    )
    return done(request, form, result)


async def break_lease(request: Request, web: WebState) -> Response:
    """POST /tasks/{task}/lease/break: end the current phase's lease (ledgered lease.broken)."""
    viewer, form = await admin_form(request, web)
    task = check_task_id(request.path_params["task"])
    result = await web.enforcer().lease_break(viewer.caller(), task, form.get("reason", ""))
    return done(request, form, result)
