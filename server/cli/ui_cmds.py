"""`phasegate ui`: the supervisor page alone, over a local state directory, on loopback.

It opens the state like every other command (a directory without phasegate state is refused,
exit 2) and serves the page that ``phasegate serve --http`` serves at ``/``. Sign-in uses an
actor's token, so ``[actors.NAME] token_sha256`` entries must exist in phasegate.toml.

    phasegate ui --state-dir state --port 8766      # http://127.0.0.1:8766/
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from .common import EXIT_OK, EXIT_UNREADABLE, cli_config, require_state

__all__ = ["register"]

DEFAULT_PORT = 8766


def _ui(args: argparse.Namespace) -> int:
    from enforcer.config import config_path
    from enforcer.runtime import open_runtime
    from enforcer.service import Enforcer

    from ..web import web_app

    require_state(args.state_dir)
    config = cli_config(args)
    if not any(a.token_sha256 for a in config.actors.values()):
        print(
            "error: the page signs in with an actor's token: add [actors.NAME] token_sha256"
            " to phasegate.toml (phasegate token hash TOKEN prints one)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    opened: list[Enforcer] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        source = config_path(args.config, args.state_dir)  # the policy re-reads it while serving
        async with open_runtime(args.state_dir, config=config, config_file=source) as rt:
            opened.append(Enforcer(rt))
            try:
                yield
            finally:
                opened.clear()

    app = web_app(lambda: opened[0] if opened else None, lifespan=lifespan)
    import uvicorn

    from ..http import listen, page_url

    # Bound before serving and printed with the port actually bound: with --port 0 the line
    # is how a supervisor or a test learns the port, without looking one up first.
    sock = listen(args.host, args.port)
    print(f"phasegate ui: {page_url(sock)}  (state {args.state_dir})", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        served = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        uvicorn.Server(served).run(sockets=[sock])
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ui", parents=[common], help="serve the supervisor's web page for a state directory"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: any free one, printed)",
    )
    p.set_defaults(handler=_ui)
