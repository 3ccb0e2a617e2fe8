"""**TEST-ONLY — UNSAFE IN PRODUCTION.** Named points in promotion and install where a test can
stop the server, to prove what a crash at that very moment leaves behind.

With ``PHASEGATE_TEST_HALT_AT=<point>`` in its environment, a server that reaches `point` writes
the point's name to ``$PHASEGATE_TEST_HALT_MARKER`` (if set) and then blocks forever, so the
test can SIGKILL it there — deterministic, no timing involved. In-process tests register an
async hook for a point instead (`set_hook`), e.g. to pause promotions at the moment between
the first pause check and the last. Nothing else reads these variables; never set them on a
real server: a halted server holds its database lock until it is killed.

Points: ``install:materialising`` (half of a new version's tree written), ``install:materialised``
(the tree complete, pointer not moved), ``install:swapped`` (install path swapped inside the
transaction, not committed), ``install:committed`` (after the commit), ``promote:signed``
(attestation signed, version not yet recorded).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["HALT_ENV", "MARKER_ENV", "halt_if_asked", "reach", "set_hook"]

logger = logging.getLogger(__name__)

HALT_ENV = "PHASEGATE_TEST_HALT_AT"
MARKER_ENV = "PHASEGATE_TEST_HALT_MARKER"
_hooks: dict[str, Callable[[], Awaitable[None]]] = {}


def halt_if_asked(point: str) -> None:
    """**Test-only**: block forever at `point` when the environment asks for it."""
    if os.environ.get(HALT_ENV) != point:
        return
    logger.warning("TEST-ONLY halt at %s (%s is set): waiting to be killed", point, HALT_ENV)
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(point)
    threading.Event().wait()  # until SIGKILL


async def reach(point: str) -> None:
    """**Test-only**: run the hook registered for `point`, or halt there if asked."""
    halt_if_asked(point)
    hook = _hooks.get(point)
    if hook is not None:
        await hook()


def set_hook(point: str, hook: Callable[[], Awaitable[None]] | None) -> None:
    """**Test-only**: run `hook` whenever `point` is reached in this process (None removes)."""
    if hook is None:
        _hooks.pop(point, None)
    else:
        _hooks[point] = hook
