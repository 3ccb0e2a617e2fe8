"""The supervisor page as an ASGI app: routes, the security headers, refusals as pages.

`web_app(source)` serves the page over whatever enforcer `source()` returns: the HTTP server's
own (``phasegate serve --http``, mounted at ``/`` beside ``/mcp``) or one opened for a local
state directory (``phasegate ui``). Every response carries a strict Content-Security-Policy:
only this server's own script and style files run, no inline script or style, nothing from
elsewhere, no framing.

    app = web_app(lambda: enforcer)
    uvicorn.run(app, host="127.0.0.1", port=8766)
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enforcer.errors import PhasegateError
from enforcer.service import Enforcer

from . import actions, approval_pages, module_pages, pages
from .auth import Refused, signed_in, signin, signin_form, signout
from .context import WebState
from .live import sse_response
from .render import page

__all__ = ["SECURITY_HEADERS", "web_app"]

logger = logging.getLogger(__name__)

Handler = Callable[[Request, WebState], Awaitable[Response]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_STATUS = {
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "STORE": 503,
}


class SecurityHeaders:
    """Adds the security headers to every response, and no-store to every page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _endpoint(web: WebState, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request, web)
        except Refused as refused:
            return refused.response
        except PhasegateError as e:
            return _error_page(request, web, e.to_body(), _STATUS.get(e.code, 409))
        except Exception:
            correlation = secrets.token_hex(6)
            logger.exception("web page error (correlation id %s)", correlation)
            body = {
                "error": {
                    "code": "INTERNAL",
                    "message": f"internal error (correlation id {correlation})",
                    "hint": "nothing was changed by this page; see the server's log",
                    "details": {"correlation_id": correlation},
                }
            }
            return _error_page(request, web, body, 500)

    return endpoint


def _error_page(request: Request, web: WebState, body: dict[str, Any], status: int) -> Response:
    view: dict[str, Any] = {"viewer": None, "csrf": ""}
    with contextlib.suppress(Refused, PhasegateError):
        _, view = signed_in(request, web)
    return page(request, "error.html", body, status=status, view=view)


async def _events(request: Request, web: WebState) -> Response:
    signed_in(request, web)
    after = request.query_params.get("after", "")
    return sse_response(web.the_watch(), int(after) if after.lstrip("-").isdigit() else -2)  # type: ignore[no-any-return]


def web_app(source: Callable[[], Enforcer | None], lifespan: Any = None) -> ASGIApp:
    """The page over the enforcer `source()` returns (None while the state is not open).

    `lifespan` is the Starlette lifespan of a page served alone (``phasegate ui``), which opens
    the state; under ``phasegate serve --http`` the MCP app's lifespan does."""
    web = WebState(source)
    static = Path(__file__).parent / "static"

    def get(path: str, fn: Handler) -> Route:
        return Route(path, _endpoint(web, fn), methods=["GET"])

    def post(path: str, fn: Handler) -> Route:
        return Route(path, _endpoint(web, fn), methods=["POST"])

    routes = [
        get("/", pages.board),
        get("/signin", signin_form),
        post("/signin", signin),
        post("/signout", signout),
        get("/events", _events),
        get("/tasks/{task}", pages.task_page),
        get("/tasks/{task}/evidence/{phase}/{name}/diff", pages.evidence_diff),
        post("/tasks/{task}/lease/break", actions.break_lease),
        get("/ledger", pages.ledger_page),
        get("/ledger/{seq:int}", pages.ledger_entry),
        get("/traces/{trace}", pages.trace_page),
        get("/controls", pages.controls_page),
        get("/approvals", approval_pages.approvals_page),
        post("/approvals/{approval}/{verb}", approval_pages.decide),
        get("/modules", module_pages.modules_page),
        get("/modules/{module}", module_pages.module_page),
        post("/modules/{module}/rollback", module_pages.rollback),
        get("/drafts/{draft}", module_pages.draft_page),
        get("/drafts/{draft}/diff", module_pages.draft_diff),
        post("/controls/{switch}/{state}", actions.set_control),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = web
    return SecurityHeaders(app)
