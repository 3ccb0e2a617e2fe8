"""Streamable HTTP with static bearer tokens: the ASGI app `phasegate serve --http` runs.

phasegate's tokens are configured, not issued: there is no OAuth authorization server. So a
request without a valid token is answered with a plain RFC 6750 challenge a client handles —
``WWW-Authenticate: Bearer realm="phasegate"`` when no token was sent, the same with
``error="invalid_token"`` when the token is not known — and no protected-resource metadata that
would send a client into an OAuth flow that cannot succeed. Behind this gate the SDK's own
bearer middleware still checks the token and carries its actor and role to the tools.

    app = http_app(server, config, host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from enforcer.config import Config

from .auth import ConfigTokenVerifier

__all__ = ["BearerGate", "Site", "endpoint", "http_app", "listen", "run_http"]

_REALM = 'Bearer realm="phasegate"'


class BearerGate:
    """Refuses HTTP requests without a known bearer token, before anything else runs."""

    def __init__(self, app: ASGIApp, verifier: ConfigTokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (and websockets, which we do not serve)
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            await _challenge(
                send,
                _REALM,
                "a bearer token is required: send the header Authorization: Bearer <token>",
            )
            return
        if await self.verifier.verify_token(token) is None:
            await _challenge(
                send,
                f'{_REALM}, error="invalid_token", error_description="unknown token"',
                "the bearer token is not one this server knows (phasegate token hash TOKEN"
                " prints the token_sha256 to configure)",
            )
            return
        await self.app(scope, receive, send)


async def _challenge(send: Send, www_authenticate: str, message: str) -> None:
    body = json.dumps({"error": "unauthorized", "error_description": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", www_authenticate.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Site:
    """``/mcp`` to the MCP app behind the bearer gate, every other path to the supervisor page
    (which signs in with its own session cookie, never a bearer header). The MCP app owns the
    lifespan: it opens the state both serve."""

    def __init__(self, mcp: ASGIApp, web: ASGIApp) -> None:
        self.mcp = mcp
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "lifespan" or path == "/mcp" or path.startswith("/mcp/"):
            await self.mcp(scope, receive, send)
        else:
            await self.web(scope, receive, send)


def http_app(
    server: MCPServer[Any], config: Config, *, host: str, web: ASGIApp | None = None
) -> ASGIApp:
    """The MCP endpoint at /mcp behind the bearer gate; the page `web` at / when given."""
    mcp = BearerGate(server.streamable_http_app(host=host), ConfigTokenVerifier(config))
    return mcp if web is None else Site(mcp, web)


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 lets the system pick a free one.

    With TCP_NODELAY, which the connections it accepts inherit: asyncio sets it only on sockets
    whose protocol number says TCP, and `create_server` leaves that 0, so without it every
    answer on a kept-alive connection waited out the client's delayed ACK (44 ms per call
    here instead of 4.5)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def page_url(sock: socket.socket) -> str:
    """The base URL (ending in /) a browser reaches through `sock`, with the port actually
    bound."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def endpoint(sock: socket.socket) -> str:
    """The /mcp URL a client reaches through `sock` (with the port actually bound)."""
    return f"{page_url(sock)}mcp"


def run_http(
    server: MCPServer[Any], config: Config, host: str, port: int, web: ASGIApp | None = None
) -> None:
    """Serve until interrupted (uvicorn handles SIGINT and SIGTERM).

    The socket is bound and listening before serving starts, and its address is printed on
    stderr (``phasegate: listening on http://127.0.0.1:PORT/mcp``): with ``--port 0`` that is
    how a supervisor or a test learns the port, without looking one up first (which another
    process could take meanwhile).
    """
    import uvicorn

    sock = listen(host, port)
    print(f"phasegate: listening on {endpoint(sock)}", file=sys.stderr, flush=True)
    app = http_app(server, config, host=host, web=web)
    config_ = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config_).run(sockets=[sock])
