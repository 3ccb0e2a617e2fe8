"""Signed session cookies and CSRF tokens for the supervisor page.

A session is the signed-in actor and an expiry, carried in one cookie whose value is
``base64url(payload) "." base64url(HMAC-SHA256(secret, payload))``; the secret is 32 random bytes
kept in ``state/keys/web-session.key`` (0600), made on first use. Nothing else is stored: the
cookie is the session, and it ends at its expiry (sign-out clears it from the browser). The role
is not trusted from the cookie: every request looks the actor up in the configuration again.

A form's CSRF token is ``HMAC(secret, "csrf" NUL session id)``: it is bound to one session, so a
token read from another session, or no token, is refused. The sign-in form, before any session
exists, is bound the same way to a random pre-session cookie (login CSRF).

    sessions = Sessions.from_keys(Path("state/keys"))
    cookie = sessions.issue("alice", now=time.time())
    session = sessions.read(cookie, now=time.time())      # None when forged or expired
    assert sessions.csrf_ok(session.sid, sessions.csrf(session.sid))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COOKIE", "PRE_COOKIE", "SESSION_TTL_S", "Session", "Sessions"]

COOKIE = "phasegate_session"
PRE_COOKIE = "phasegate_signin"
SESSION_TTL_S = 8 * 3600  # a working day; then sign in again
_KEY_FILE = "web-session.key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    actor: str
    sid: str  # random per sign-in: what the CSRF token is bound to
    expires: int  # unix seconds


class Sessions:
    """Issue and check session cookies and CSRF tokens with one server secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the session secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    def from_keys(cls, keys_dir: Path) -> Sessions:
        """The secret in `keys_dir`, created (0600, written whole) when absent."""
        path = keys_dir / _KEY_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            pass
        keys_dir.mkdir(parents=True, exist_ok=True)
        tmp = keys_dir / f".{_KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # first writer wins when two processes start at once
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return cls(path.read_bytes())

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\0".join(parts).encode(), hashlib.sha256).digest()

    def issue(self, actor: str, *, now: float, ttl_s: int = SESSION_TTL_S) -> tuple[str, Session]:
        """A new session for `actor`: (the cookie value, the session)."""
        session = Session(actor=actor, sid=secrets.token_urlsafe(18), expires=int(now) + ttl_s)
        payload = json.dumps(
            {"a": session.actor, "s": session.sid, "e": session.expires}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac('session', payload.decode()))}", session

    def read(self, cookie: str | None, *, now: float) -> Session | None:
        """The session in `cookie`, or None when it is absent, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        body, mac = cookie.split(".")
        try:
            payload = _unb64(body)
            given = _unb64(mac)
            if not hmac.compare_digest(given, self._mac("session", payload.decode())):
                return None
            fields = json.loads(payload)
            session = Session(actor=str(fields["a"]), sid=str(fields["s"]), expires=fields["e"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None
        if type(session.expires) is not int or session.expires <= now:
            return None
        return session

    def csrf(self, bound_to: str) -> str:
        """The CSRF token for forms of the session (or pre-session) `bound_to`."""
        return _b64(self._mac("csrf", bound_to))

    def csrf_ok(self, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf(bound_to).encode(), token.encode())
