"""Sign-in with an actor's token, sign-out, and the checks every page and form passes.

The token is the one an actor uses for HTTP MCP (``[actors.NAME] token_sha256``); a correct one
sets the session cookie (HttpOnly, SameSite=Strict, Max-Age, Secure over https). A page asked
for without a session sends the browser to the sign-in page (a JSON twin or the event stream
answers 401). A form is accepted only with its session's CSRF token, and an action only from an
admin: anything else is 403 before the enforcer is called, so nothing is ledgered.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..auth import ConfigTokenVerifier
from .context import Viewer, WebState
from .render import page, wants_json
from .session import COOKIE, PRE_COOKIE, SESSION_TTL_S

__all__ = ["Refused", "admin_form", "safe_next", "signed_in", "signin_form", "signin", "signout"]

_MAX_FORM = 64 * 1024


class Refused(Exception):
    """A request refused before anything ran: its response is ready."""

    def __init__(self, response: Response) -> None:
        self.response = response


def safe_next(target: str | None) -> str:
    """A local path to return to; anything else (another site, a scheme) is the board."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _cookie_flags(request: Request) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/",
    }


def _forbidden(request: Request, web: WebState, message: str, viewer: Viewer | None) -> Refused:
    data = {"error": {"code": "FORBIDDEN", "message": message, "hint": "", "details": {}}}
    return Refused(page(request, "error.html", data, status=403, view=_view(web, viewer)))


def _view(web: WebState, viewer: Viewer | None) -> dict[str, object]:
    if viewer is None:
        return {"viewer": None, "csrf": ""}
    return {"viewer": viewer, "csrf": web.the_sessions().csrf(viewer.session.sid)}


def signed_in(request: Request, web: WebState) -> tuple[Viewer, dict[str, object]]:
    """The viewer and the template values every page needs; else Refused (to sign in)."""
    viewer = web.viewer(request)
    if viewer is None:
        if wants_json(request) or request.url.path == "/events":
            body = {"error": {"code": "FORBIDDEN", "message": "sign in first", "hint": "/signin"}}
            raise Refused(JSONResponse(body, status_code=401))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Refused(RedirectResponse(f"/signin?next={quote(target)}", status_code=303))
    return viewer, _view(web, viewer)


async def _form(request: Request) -> dict[str, str]:
    if int(request.headers.get("content-length") or 0) > _MAX_FORM:
        return {}
    form = await request.form(max_files=0, max_fields=32)
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def admin_form(request: Request, web: WebState) -> tuple[Viewer, dict[str, str]]:
    """A POSTed form of a signed-in admin with its session's CSRF token; else Refused (403)."""
    viewer = web.viewer(request)
    form = await _form(request)
    if viewer is None:
        raise _forbidden(request, web, "sign in first", None)
    if not web.the_sessions().csrf_ok(viewer.session.sid, form.get("csrf")):
        raise _forbidden(request, web, "the form's CSRF token is missing or wrong", viewer)
    if not viewer.is_admin:
        message = f"only an admin may do this ({viewer.actor} is a {viewer.role})"
        raise _forbidden(request, web, message, viewer)
    return viewer, form


async def signin_form(request: Request, web: WebState) -> Response:
    """The sign-in page, with a pre-session cookie its CSRF token is bound to."""
    pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(18)
    data = {"next": safe_next(request.query_params.get("next")), "failed": False}
    view = {"viewer": None, "csrf": web.the_sessions().csrf("signin\0" + pre)}
    response = page(request, "signin.html", data, view=view)
    response.set_cookie(PRE_COOKIE, pre, max_age=3600, **_cookie_flags(request))  # type: ignore[arg-type]
    return response


async def signin(request: Request, web: WebState) -> Response:
    form = await _form(request)
    pre = request.cookies.get(PRE_COOKIE)
    sessions = web.the_sessions()
    if pre is None or not sessions.csrf_ok("signin\0" + pre, form.get("csrf")):
        raise _forbidden(request, web, "the sign-in form's CSRF token is missing or wrong", None)
    access = await ConfigTokenVerifier(web.config).verify_token(form.get("token", "").strip())
    target = safe_next(form.get("next"))
    if access is None:
        data = {"next": target, "failed": True}
        view = {"viewer": None, "csrf": sessions.csrf("signin\0" + pre)}
        return page(request, "signin.html", data, status=401, view=view)
    cookie, _ = sessions.issue(access.client_id, now=time.time())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_TTL_S, **_cookie_flags(request))  # type: ignore[arg-type]
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


async def signout(request: Request, web: WebState) -> Response:
    viewer = web.viewer(request)
    form = await _form(request)
    if viewer is None or not web.the_sessions().csrf_ok(viewer.session.sid, form.get("csrf")):
        raise _forbidden(request, web, "the form's CSRF token is missing or wrong", viewer)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
