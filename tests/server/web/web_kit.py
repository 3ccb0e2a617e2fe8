"""Helpers for the supervisor page's tests: a real server process with actors and tokens, a
signed-in HTTP client, and a real MCP client for the agent.

`site` runs ``phasegate serve --http`` (the page at ``/`` beside ``/mcp``) or ``phasegate ui``
as a subprocess over a state directory with three actors: alice (admin), vic (viewer) and bot
(operator, the agent). Nothing is mocked: SQLite files, real sockets, the MCP SDK's client.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from server_kit import running, toml_text, wait_until

TOKENS = {
    "alice": "alice-admin-token-0123",
    "vic": "vic-viewer-token-4567",
    "bot": "bot-op-token-89ab",
}
ROLES = {"alice": "admin", "vic": "viewer", "bot": "operator"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def actors_toml() -> str:
    return "".join(
        f'[actors.{name}]\nrole = "{ROLES[name]}"\n'
        f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        for name, token in TOKENS.items()
    )


# Both commands bind port 0 and print the URL with the port the system gave them:
# "phasegate: listening on http://127.0.0.1:PORT/mcp" (serve) or "phasegate ui: http://...:PORT/".
_LISTENING = re.compile(r"phasegate(?:: listening on| ui:) (http://[^/\s]+)/")


@dataclass(frozen=True)
class Site:
    base: str
    state_dir: Path
    log: Path

    @property
    def mcp(self) -> str:
        return f"{self.base}/mcp"


@contextlib.contextmanager
def site(
    tmp_path: Path, sample_project: Path, command: str = "serve", extra_toml: str = ""
) -> Iterator[Site]:
    """`phasegate serve --http` (command "serve") or `phasegate ui` ("ui") on port 0; the URL
    is read back from the line the server prints once bound (no port looked up first)."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    text = toml_text(sample_project, actors_toml() + extra_toml)
    (state_dir / "phasegate.toml").write_text(text)
    cli = [sys.executable, "-m", "server.cli"]
    if command == "serve":
        argv = [*cli, "serve", "--http", "--port", "0", "--state-dir", str(state_dir)]
    else:
        argv = [*cli, "ui", "--port", "0", "--state-dir", str(state_dir)]
    log = tmp_path / f"{command}.log"
    with running(argv, log) as proc:
        found: list[str] = []

        def listening() -> bool:
            found.extend(_LISTENING.findall(log.read_text()))
            return bool(found) or proc.poll() is not None

        wait_until(listening, 30, "the server to print the port it bound")
        assert proc.poll() is None and found, log.read_text()
        yield Site(found[0], state_dir, log)


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


@contextlib.contextmanager
def signed_in(base: str, actor: str) -> Iterator[tuple[httpx2.Client, str]]:
    """An HTTP client signed in as `actor` through the sign-in form, and its CSRF token."""
    with httpx2.Client(base_url=base, follow_redirects=False, timeout=30) as client:
        yield client, _sign_in(client, actor)


def _sign_in(client: httpx2.Client, actor: str) -> str:
    form = client.get("/signin")
    assert form.status_code == 200
    done = client.post(
        "/signin", data={"csrf": csrf_of(form.text), "token": TOKENS[actor], "next": "/"}
    )
    assert done.status_code == 303, done.text
    board = client.get("/")
    assert board.status_code == 200
    return csrf_of(board.text)


@contextlib.asynccontextmanager
async def agent(url: str, actor: str = "bot") -> AsyncIterator[ClientSession]:
    """A real MCP client over streamable HTTP with `actor`'s bearer token."""
    auth = {"Authorization": f"Bearer {TOKENS[actor]}"}
    async with (
        create_mcp_http_client(headers=auth) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


CHROMIUM = "/usr/bin/chromium"


@contextlib.asynccontextmanager
async def browser_page(base: str, actor: str | None = None) -> AsyncIterator[Any]:
    """A page in real headless Chromium (Debian's, driven by Playwright), signed in as `actor`
    through the sign-in form when given."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(15_000)
            errors: list[str] = []  # the page's own console errors (a CSP refusal lands here)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            if actor is not None:
                await page.goto(f"{base}/")
                await page.fill("#token", TOKENS[actor])
                await page.click("#signin")
                await page.wait_for_selector(".board")
            yield page
            assert errors == [], errors  # no script error, nothing refused by the CSP
        finally:
            await browser.close()
