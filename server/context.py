"""What a tool handler is given: the call context, and the router services it may use.

Its own module so that the catalogue (which types handlers) and the router (which builds
contexts) both depend on it and not on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_types import CallToolResult

from enforcer.model import Caller
from enforcer.phases import Phase
from enforcer.service import Enforcer

__all__ = ["CallContext", "RouterServices"]


class RouterServices(Protocol):
    """What a handler asks of the router."""

    def rendered(
        self, key: Hashable, source: object, payload: Callable[[], dict[str, Any]]
    ) -> CallToolResult:
        """The result rendered from `source` once, reused while `source` is unchanged."""
        ...

    def allowed_now(self, phase: Phase | None, caller: Caller, frozen: bool = False) -> list[str]:
        """Tools `caller` may call on a task in `phase` (only read-only ones when `frozen`)."""
        ...

    async def writes_refused(self) -> bool:
        """Whether every mutating call is refused now (freeze, unreadable controls, ledger)."""
        ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a handler gets: the enforcer, the caller, and the router facts about the call."""

    enforcer: Enforcer
    caller: Caller
    router: RouterServices
    phase: Phase | None
