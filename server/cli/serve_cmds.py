"""`phasegate serve`, `demo`, `token hash` and `telemetry summary|trace`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
from typing import Any

from enforcer.config import config_path
from enforcer.paths import StatePaths

from .common import (
    EXIT_OK,
    EXIT_UNREADABLE,
    UsageError,
    cli_config,
    require_state,
    with_enforcer,
)

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    from ..app import ServeOptions, build_server

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = cli_config(args)
    http = None
    if args.http:
        port = config.server.port if args.port is None else args.port  # 0: any free port
        http = (args.host or config.server.host, port)
    if http is not None and not any(a.token_sha256 for a in config.actors.values()):
        print(
            "error: --http needs [actors.NAME] token_sha256 entries in phasegate.toml"
            " (phasegate token hash TOKEN prints one)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    server_options = ServeOptions(
        state_dir=args.state_dir,
        config=config,
        config_path=config_path(args.config, args.state_dir),
        actor=args.actor,
        http=http,
        store_url=args.store or config.store.url,
    )
    server = build_server(server_options)
    telemetry = _telemetry(args, config, server.version)
    # SIGTERM ends the server like Ctrl-C: the lifespan closes (final checkpoint) and
    # telemetry is flushed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if http is None:
            from ..stdio import run_stdio

            run_stdio(server)
        else:
            from ..http import run_http
            from ..web import web_app

            options = server_options
            page = web_app(lambda: options.running[0].enforcer if options.running else None)
            run_http(server, config, http[0], http[1], web=page)
    except KeyboardInterrupt:
        pass
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    return EXIT_OK


def _port(text: str) -> int:
    """A TCP port for --port: 0 (the system picks a free one, printed on stderr) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _telemetry(args: argparse.Namespace, config: Any, version: str) -> Any:
    """Telemetry to state/telemetry/ as the server writes it, when configured (the default)."""
    if not config.telemetry.enabled:
        return None
    from ..telemetry import Telemetry

    return Telemetry.setup(
        StatePaths(args.state_dir).telemetry,
        version,
        export_interval_s=config.telemetry.export_interval_s,
    )


def _demo(args: argparse.Namespace) -> int:
    from ..app import _version
    from ..demo import run_demo

    config = cli_config(args)

    def say(step: dict[str, Any]) -> None:
        print(json.dumps(step, sort_keys=True) if args.json else step["text"], flush=True)

    args.state_dir.mkdir(parents=True, exist_ok=True)
    telemetry = _telemetry(args, config, _version())
    try:
        task = asyncio.run(run_demo(args.state_dir, say))
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    say(
        {
            "step": "done",
            "task": task,
            "text": f"done: {task}. Try: phasegate status {task} --state-dir {args.state_dir}",
        }
    )
    return EXIT_OK


def _token_hash(args: argparse.Namespace) -> int:
    from ..auth import token_sha256

    print(token_sha256(args.token))
    return EXIT_OK


def _telemetry_summary(args: argparse.Namespace) -> int:
    from ..telemetry_report import read_counters, read_spans, summary

    directory = StatePaths(args.state_dir).telemetry
    if not directory.is_dir():  # a server's telemetry may be read without its database
        require_state(args.state_dir)
    result = summary(read_spans(directory), read_counters(directory))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return EXIT_OK
    rate = result["tool_success_rate"]
    lat = result["tool_latency_ms"]
    shown = "-" if rate is None else f"{rate:.1%}"
    print(f"tool calls: {result['tool_calls']}  success rate: {shown}")
    refusals = ", ".join(f"{k}={v}" for k, v in result["refusals_by_code"].items())
    print(f"refusals: {refusals or 'none'}"[:80])
    print(
        f"transitions: {result['transitions']}  backtracks: {result['backtracks']}"
        f"  drift events: {result['drift_events']}"
    )
    print(f"loops (>= 3 backtracks): {', '.join(result['loops']) or 'none'}"[:80])
    if lat["p50"] is not None:
        print(f"tool latency: p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms")
    return EXIT_OK


def _telemetry_trace(args: argparse.Namespace) -> int:
    trace_id = args.trace_id.lower()
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        raise UsageError(f"{args.trace_id!r} is not a trace id (32 hex digits)")
    entries = with_enforcer(args, lambda e: e.ledger.by_trace(trace_id))
    rows = [e.as_dict() for e in entries]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no ledger entries carry trace {trace_id}")
    for e in rows:
        subject = json.dumps(e["subject"], sort_keys=True)
        print(f"{e['seq']:>6} {e['ts'][:19]} {e['actor'][:12]:<12} {e['type']:<22} {subject}"[:80])
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP with bearer tokens")
    p.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=None, help="HTTP port (default 8765; 0: any free port)"
    )
    p.set_defaults(handler=_serve)

    p = sub.add_parser("demo", parents=[common], help="drive a sample task to DONE")
    p.set_defaults(handler=_demo)

    tele = sub.add_parser("telemetry", help="read the telemetry files")
    tsub = tele.add_subparsers(dest="telemetry_command", required=True)
    p = tsub.add_parser("summary", parents=[common], help="success rate, refusals, latency")
    p.set_defaults(handler=_telemetry_summary)
    p = tsub.add_parser("trace", parents=[common], help="the ledger entries of one trace")
    p.add_argument("trace_id")
    p.set_defaults(handler=_telemetry_trace)

    token = sub.add_parser("token", help="HTTP bearer tokens")
    ksub = token.add_subparsers(dest="token_command", required=True)
    p = ksub.add_parser("hash", parents=[common], help="print sha256(TOKEN) for token_sha256")
    p.add_argument("token")
    p.set_defaults(handler=_token_hash)
