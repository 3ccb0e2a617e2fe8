"""Bearer tokens for streamable HTTP: configuration maps sha256(token) to an actor and a role.

The server never stores a token, only its digest; comparison is constant-time. A request with
no token or an unknown one is refused by the SDK's bearer middleware (401) before any tool runs.

    [actors.alice]
    role = "operator"
    token_sha256 = "<sha256 hex of the token>"     # phasegate token hash <token> prints it
"""

from __future__ import annotations

import hashlib
import hmac

from mcp.server.auth.provider import AccessToken

from enforcer.config import Config

__all__ = ["ConfigTokenVerifier", "token_sha256"]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConfigTokenVerifier:
    """The SDK's TokenVerifier over `[actors.*].token_sha256`; the role travels as the scope."""

    def __init__(self, config: Config) -> None:
        self._by_digest = {
            a.token_sha256: (name, a.role)
            for name, a in config.actors.items()
            if a.token_sha256 is not None
        }

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = token_sha256(token)
        for known, (actor, role) in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return AccessToken(token=token, client_id=actor, scopes=[role])
        return None
