"""What every page handler is given: the enforcer, the sessions, the ledger watch, and who asks.

The page is only a face over the enforcer: reads call its facade, actions call the same verbs
as the CLI with the signed-in actor as the caller, so they are checked and ledgered alike.

    web = WebState(lambda: enforcer)
    viewer = web.viewer(request)          # None: not signed in (or the actor is gone)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from enforcer.config import Config
from enforcer.errors import StoreError
from enforcer.model import Caller, Role
from enforcer.service import Enforcer

from .live import LedgerWatch
from .session import COOKIE, Session, Sessions

__all__ = ["Viewer", "WebState"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in supervisor: the session, and the role the configuration gives the actor."""

    session: Session
    role: Role

    @property
    def actor(self) -> str:
        return self.session.actor

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def caller(self) -> Caller:
        # One instance name per page process: a lease the page breaks names "web-<pid>".
        return Caller(self.actor, self.role, f"web-{os.getpid()}", os.getpid())


class WebState:
    """The page's view of one enforcer, built on the first request that finds one."""

    def __init__(self, source: Callable[[], Enforcer | None]) -> None:
        self._source = source
        self._enforcer: Enforcer | None = None
        self.sessions: Sessions | None = None
        self.watch: LedgerWatch | None = None
        self.verify_cache: dict[str, object] = {}

    def enforcer(self) -> Enforcer:
        enforcer = self._source()
        if enforcer is None:
            raise StoreError("the state is not open yet (the server is starting or stopping)")
        if enforcer is not self._enforcer:
            self._enforcer = enforcer
            self.sessions = Sessions.from_keys(enforcer.rt.paths.keys)
            self.watch = LedgerWatch(enforcer.ledger)
            self.verify_cache = {}
        return enforcer

    @property
    def config(self) -> Config:
        return self.enforcer().config

    @property
    def state_dir(self) -> Path:
        return self.enforcer().rt.paths.root

    def the_sessions(self) -> Sessions:
        self.enforcer()
        assert self.sessions is not None
        return self.sessions

    def the_watch(self) -> LedgerWatch:
        self.enforcer()
        assert self.watch is not None
        return self.watch

    def viewer(self, request: Request) -> Viewer | None:
        """Who signed in, or None. The role comes from the configuration on every request, so
        an actor removed from phasegate.toml (or whose token was removed) is signed out."""
        session = self.the_sessions().read(request.cookies.get(COOKIE), now=time.time())
        if session is None:
            return None
        actor = self.config.actors.get(session.actor)
        if actor is None or actor.token_sha256 is None:
            return None
        return Viewer(session, actor.role)
