"""The governed modules on the page: modules with their versions, active pointer and each
version's attestation (checked as the install guard checks it), a draft with its validation,
and a draft's diff in the viewer; an admin rolls a module back with the CLI's enforcer call.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from enforcer.errors import InvalidArgumentError
from enforcer.names import check_module_name

from .actions import done
from .auth import admin_form, signed_in
from .context import WebState
from .diffs import parse_unified
from .render import page

__all__ = ["draft_diff", "draft_page", "module_page", "modules_page", "rollback"]

_ATTESTED = 50  # versions whose attestation is opened on one page (newest first)


async def modules_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    data = {"modules": await web.enforcer().modules.module_list()}
    return page(request, "modules.html", data, view=view)


async def module_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    modules = web.enforcer().modules
    name = check_module_name(request.path_params["module"])
    found = await modules.module_versions(name)
    for v in sorted(found["versions"], key=lambda v: -v["version"])[:_ATTESTED]:
        v["attestation"] = await modules.version_attestation(name, v["version"])
    return page(request, "module.html", found, view=view)


async def rollback(request: Request, web: WebState) -> Response:
    """POST /modules/{module}/rollback: the pointer back (to_version, else the previous one)."""
    viewer, form = await admin_form(request, web)
    name = check_module_name(request.path_params["module"])
    to = form.get("to_version", "").strip()
    if to and not to.isdigit():
        raise InvalidArgumentError("to_version must be a version number", details={})
    result = await web.enforcer().modules.module_rollback(
        viewer.caller(), name, form.get("reason", ""), int(to) if to else None
    )
    return done(request, form, result)


async def draft_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    draft = request.path_params["draft"]
    shown = await web.enforcer().modules.draft_show(draft)
    return page(request, "draft.html", shown, view=view)


async def draft_diff(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    draft = request.path_params["draft"]
    found = await web.enforcer().modules.draft_diff(draft)
    if request.query_params.get("format") == "patch":
        return PlainTextResponse(found["diff"])
    data = {
        "title": f"{found['module']} draft {draft} (from v{found['base_version']})",
        "source": {k: v for k, v in found.items() if k != "diff"},
        "diff": parse_unified(found["diff"]),
        "back": f"/drafts/{draft}",
        "raw": f"{request.url.path}?format=patch",
    }
    return page(request, "diff.html", data, view=view)
