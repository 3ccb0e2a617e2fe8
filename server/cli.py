"""The `phasegate` command: the server entry point and the supervisor's commands.

Exit codes of verifying commands: 0 everything holds, 1 tampering or a failed check,
2 unreadable input (no database, no key, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from enforcer.config import load_config
from enforcer.errors import LedgerFaultError, PhasegateError, StoreError
from enforcer.model import Caller
from enforcer.paths import StatePaths, default_state_dir

EXIT_OK = 0
EXIT_FAULT = 1
EXIT_UNREADABLE = 2

Handler = Callable[[argparse.Namespace], int]


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True) if args.json else text)


def _checked(args: argparse.Namespace, check: Callable[[Path], Any]) -> tuple[Any, int]:
    """Run a verifier: (its report, EXIT_OK), or (None, the exit code) after printing the fault."""
    try:
        return check(args.state_dir), EXIT_OK
    except LedgerFaultError as e:
        _emit(
            args,
            {"ok": False, "fault": e.kind, "seq": e.seq, "message": e.message},
            f"FAIL {e.kind} at seq {e.seq}: {e.message}",
        )
        return None, EXIT_FAULT
    except StoreError as e:
        _emit(
            args,
            {"ok": False, "fault": "unreadable", "message": e.message},
            f"UNREADABLE: {e.message}",
        )
        return None, EXIT_UNREADABLE


def _ledger_verify(args: argparse.Namespace) -> int:
    from enforcer.ledger.verify import verify_state

    report, code = _checked(args, verify_state)
    if report is None:
        return code
    _emit(
        args,
        report.as_dict(),
        f"OK {report.entries} entries, root {report.root}, {report.checkpoints} checkpoints"
        f" (newest at size {report.latest_checkpoint_size})",
    )
    return EXIT_OK


def _ledger_tail(args: argparse.Namespace) -> int:
    found = _with_enforcer(args, lambda e: e.ledger.tail(args.limit, args.task))
    entries = [e.as_dict() for e in found]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for e in entries:
            subject = " ".join(f"{k}={v}" for k, v in sorted(e["subject"].items()))
            print(f"{e['seq']:>7} {e['ts']} {e['actor']:<16} {e['type']:<24} {subject}")
    return EXIT_OK


def _ledger_show(args: argparse.Namespace) -> int:
    entry = _with_enforcer(args, lambda e: e.ledger.get(args.seq))
    found = None if entry is None else entry.as_dict()
    if found is None:
        print(f"no ledger entry with seq {args.seq}", file=sys.stderr)
        return EXIT_FAULT
    trace = found["refs"].get("trace_id", "-")
    _emit(args, found, json.dumps(found, indent=2, sort_keys=True) + f"\ntrace_id: {trace}")
    return EXIT_OK


def _ledger_checkpoint(args: argparse.Namespace) -> int:
    cp = _with_enforcer(args, lambda e: e.ledger.checkpoint(), write=True)
    result = {"size": 0 if cp is None else cp.size, "root": None if cp is None else cp.root.hex()}
    _emit(args, result, f"checkpoint at size {result['size']} root {result['root']}")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from .app import ServeOptions, build_server

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = load_config(args.config, state_dir=args.state_dir)
    http = None
    if args.http:
        host = args.host or config.server.host
        port = args.port or config.server.port
        http = (host, port)
    if http is not None and not any(a.token_sha256 for a in config.actors.values()):
        print(
            "error: --http needs [actors.NAME] token_sha256 entries in phasegate.toml"
            " (phasegate token hash TOKEN prints one)",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    server = build_server(
        ServeOptions(state_dir=args.state_dir, config=config, actor=args.actor, http=http)
    )
    telemetry = None
    if config.telemetry.enabled:
        from .telemetry import Telemetry

        telemetry = Telemetry.setup(
            StatePaths(args.state_dir).telemetry,
            server.version,
            export_interval_s=config.telemetry.export_interval_s,
        )
    # SIGTERM ends the server like Ctrl-C: the lifespan closes (final checkpoint) and
    # telemetry is flushed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if http is None:
            from .stdio import run_stdio

            run_stdio(server)
        else:
            server.run("streamable-http", host=http[0], port=http[1])
    except KeyboardInterrupt:
        pass
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    return EXIT_OK


def _supervisor(args: argparse.Namespace) -> Caller:
    """CLI callers are admins: whoever can run the CLI on the state directory owns it."""
    name = args.actor or os.environ.get("USER") or "supervisor"
    return Caller(actor=name, role="admin", instance=f"cli-{os.getpid()}", pid=os.getpid())


def _with_enforcer(
    args: argparse.Namespace, fn: Callable[[Any], Awaitable[Any]], *, write: bool = False
) -> Any:
    """Run `fn` on an enforcer over the state directory. Read commands never create state: a
    mistyped --state-dir is an error (exit 2), not a fresh empty ledger."""
    from enforcer.runtime import open_runtime
    from enforcer.service import Enforcer

    if not write and not StatePaths(args.state_dir).db.is_file():
        raise StoreError(f"no phasegate state in {args.state_dir} (no phasegate.db)")

    async def run() -> Any:
        async with open_runtime(
            args.state_dir, config_path=args.config, checkpoint_on_close=write
        ) as rt:
            return await fn(Enforcer(rt))

    return asyncio.run(run())


def _status(args: argparse.Namespace) -> int:
    async def run(e: Any) -> dict[str, Any]:
        if args.task:
            return dict((await e.task_status(args.task)).as_dict())
        return {
            "tasks": await e.task_list(),
            "controls": await e.controls(),
            "counters": await e.counters(),
        }

    result = _with_enforcer(args, run)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.task:
        print(f"{result['task']}  {result['phase']}  epoch {result['epoch']}  {result['title']}")
        lease = result["lease"] or {}
        print(
            f"  lease: {lease.get('holder') if lease.get('active') else 'free'}"
            f" (token {lease.get('fencing_token')}, expires {lease.get('expires_at')})"
        )
        print(
            f"  gate {'passes' if result['gate']['passed'] else 'blocked'};"
            f" drift: {result['drift'] or 'none'}"
        )
        for hint in result["hints"]:
            print(f"  - {hint}")
    else:
        c = result["controls"]
        print(f"frozen: {c['frozen']}   promotions paused: {c['promotions_paused']}")
        for t in result["tasks"]:
            print(
                f"{t['task']:<28} {t['phase']:<11} epoch {t['epoch']:<3}"
                f" {t['holder'] or '-':<30} {t['title']}"
            )
        if result["counters"]:
            print(
                "counters: " + ", ".join(f"{k}={v}" for k, v in sorted(result["counters"].items()))
            )
    return EXIT_OK


def _evidence_list(args: argparse.Namespace) -> int:
    records = _with_enforcer(args, lambda e: e.evidence_list(args.task, args.phase))
    rows = [r.as_dict() for r in records]
    if args.json:
        print(json.dumps(rows, indent=2))
    for r in [] if args.json else rows:
        mark = "ok " if r["valid"] else "BAD"
        print(
            f"{mark} {r['phase']:<11} {r['name']:<26} e{r['epoch']} {r['producer']:<6}"
            f" {r['sha256'][:16]} {r['size']}B"
        )
    return EXIT_OK


def _evidence_show(args: argparse.Namespace) -> int:
    rec, data = _with_enforcer(args, lambda e: e.evidence_read(args.task, args.phase, args.name))
    if args.json:
        print(
            json.dumps(
                {"record": rec.as_dict(), "content": data.decode("utf-8", "replace")}, indent=2
            )
        )
    else:
        sys.stdout.write(data.decode("utf-8", "replace"))
    return EXIT_OK


def _lease_break(args: argparse.Namespace) -> int:
    result = _with_enforcer(
        args,
        lambda e: e.lease_break(_supervisor(args), args.task, args.reason, args.phase),
        write=True,
    )
    _emit(
        args,
        result,
        f"lease on {result['task']} {result['phase']}: "
        + (f"broken (was {result['holder']})" if result["broken"] else "was not held"),
    )
    return EXIT_OK


def _control(control: str, active: bool) -> Handler:
    def run(args: argparse.Namespace) -> int:
        result = _with_enforcer(
            args,
            lambda e: e.set_control(_supervisor(args), control, active, args.reason),
            write=True,
        )
        _emit(
            args,
            result,
            f"frozen: {result['frozen']}   promotions paused: {result['promotions_paused']}",
        )
        return EXIT_OK

    return run


def _rebaseline(args: argparse.Namespace) -> int:
    prompt = None if args.prompt_file is None else Path(args.prompt_file).read_text()
    result = _with_enforcer(
        args,
        lambda e: e.prompt_rebaseline(
            _supervisor(args), args.task, args.reason, prompt, args.phase
        ),
        write=True,
    )
    _emit(
        args,
        result,
        f"{result['task']} {result['phase']}: baseline v{result['version']}"
        f" {result['sha256'][:16]}",
    )
    return EXIT_OK


def _token_hash(args: argparse.Namespace) -> int:
    from .auth import token_sha256

    print(token_sha256(args.token))
    return EXIT_OK


def _telemetry_summary(args: argparse.Namespace) -> int:
    from .telemetry_report import read_counters, read_spans, summary

    directory = StatePaths(args.state_dir).telemetry
    result = summary(read_spans(directory), read_counters(directory))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return EXIT_OK
    rate = result["tool_success_rate"]
    lat = result["tool_latency_ms"]
    print(
        f"tool calls: {result['tool_calls']}  success rate:"
        f" {'-' if rate is None else f'{rate:.1%}'}"
    )
    print(
        "refusals: "
        + (", ".join(f"{k}={v}" for k, v in result["refusals_by_code"].items()) or "none")
    )
    print(
        f"transitions: {result['transitions']}  backtracks: {result['backtracks']}"
        f"  drift events: {result['drift_events']}"
    )
    print(f"loops (>= 3 backtracks): {', '.join(result['loops']) or 'none'}")
    if lat["p50"] is not None:
        print(f"tool latency: p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms")
    return EXIT_OK


def _telemetry_trace(args: argparse.Namespace) -> int:
    trace_id = args.trace_id.lower()
    entries = _with_enforcer(args, lambda e: e.ledger.by_trace(trace_id))
    rows = [e.as_dict() for e in entries]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no ledger entries carry trace {trace_id}")
    for e in [] if args.json else rows:
        print(
            f"{e['seq']:>7} {e['ts']} {e['actor']:<16} {e['type']:<24}"
            f" {json.dumps(e['subject'], sort_keys=True)}"
        )
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    task = asyncio.run(run_demo(args.state_dir))
    print(
        f"done: {task}. Try: phasegate status {task} --state-dir {args.state_dir};"
        f" phasegate ledger verify --state-dir {args.state_dir}"
    )
    return EXIT_OK


def _verify_all(args: argparse.Namespace) -> int:
    from enforcer.integrity import check_integrity

    report, code = _checked(args, check_integrity)
    if report is None:
        return code
    d = report.as_dict()
    _emit(
        args,
        d,
        f"OK ledger {d['entries']} entries, {d['checkpoints']} checkpoints;"
        f" {d['blobs_checked']} evidence blobs, {d['evidence_files_checked']} evidence files;"
        f" projection ({d['projection_rows']} rows) equals a replay of the ledger",
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phasegate", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default: $PHASEGATE_STATE_DIR or ./state)",
    )
    common.add_argument("--config", type=Path, default=None, help="phasegate.toml to use")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--actor", default=None, help="who you are (default: $USER)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP with bearer tokens")
    p.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default 8765)")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("demo", parents=[common], help="drive a sample task to DONE")
    p.set_defaults(handler=_demo)

    p = sub.add_parser(
        "verify",
        parents=[common],
        help="full integrity check: ledger, checkpoints, evidence, projection",
    )
    p.set_defaults(handler=_verify_all)

    p = sub.add_parser("status", parents=[common], help="tasks, controls and counters")
    p.add_argument("task", nargs="?", default=None)
    p.set_defaults(handler=_status)

    evidence = sub.add_parser("evidence", help="read evidence")
    esub = evidence.add_subparsers(dest="evidence_command", required=True)
    p = esub.add_parser("list", parents=[common], help="artifacts of a task")
    p.add_argument("task")
    p.add_argument("--phase", default=None)
    p.set_defaults(handler=_evidence_list)
    p = esub.add_parser("show", parents=[common], help="one artifact's content")
    p.add_argument("task")
    p.add_argument("phase")
    p.add_argument("name")
    p.set_defaults(handler=_evidence_show)

    lease = sub.add_parser("lease", help="supervise leases")
    lsub_ = lease.add_subparsers(dest="lease_command", required=True)
    p = lsub_.add_parser("break", parents=[common], help="end the lease on a task's phase")
    p.add_argument("task")
    p.add_argument("--reason", required=True)
    p.add_argument("--phase", default=None, help="default: the task's current phase")
    p.set_defaults(handler=_lease_break)

    for name, control, active, text in (
        ("freeze", "freeze", True, "stop every mutating tool (kill switch)"),
        ("unfreeze", "freeze", False, "lift the freeze"),
        ("pause", "promotions_paused", True, "pause module promotions"),
        ("resume", "promotions_paused", False, "resume module promotions"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--reason", required=True)
        p.set_defaults(handler=_control(control, active))

    attest = sub.add_parser("attest", help="prompt attestation")
    asub = attest.add_subparsers(dest="attest_command", required=True)
    p = asub.add_parser(
        "rebaseline",
        parents=[common],
        help="accept the last reported prompt (or --prompt-file) as baseline",
    )
    p.add_argument("task")
    p.add_argument("--reason", required=True)
    p.add_argument("--phase", default=None)
    p.add_argument("--prompt-file", default=None)
    p.set_defaults(handler=_rebaseline)

    tele = sub.add_parser("telemetry", help="read the telemetry files")
    tsub_ = tele.add_subparsers(dest="telemetry_command", required=True)
    p = tsub_.add_parser("summary", parents=[common], help="success rate, refusals, latency")
    p.set_defaults(handler=_telemetry_summary)
    p = tsub_.add_parser("trace", parents=[common], help="the ledger entries of one trace")
    p.add_argument("trace_id")
    p.set_defaults(handler=_telemetry_trace)

    token = sub.add_parser("token", help="HTTP bearer tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    p = tsub.add_parser("hash", help="print sha256(token) for [actors.NAME] token_sha256")
    p.add_argument("token")
    p.set_defaults(handler=_token_hash, state_dir=None, json=False)

    ledger = sub.add_parser("ledger", help="read and verify the ledger")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)
    p = lsub.add_parser("verify", parents=[common], help="verify hashes, links, checkpoints")
    p.set_defaults(handler=_ledger_verify)
    p = lsub.add_parser("tail", parents=[common], help="the newest entries")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--task", default=None)
    p.set_defaults(handler=_ledger_tail)
    p = lsub.add_parser("show", parents=[common], help="one entry, with its trace id")
    p.add_argument("seq", type=int)
    p.set_defaults(handler=_ledger_show)
    p = lsub.add_parser("checkpoint", parents=[common], help="sign a checkpoint now")
    p.set_defaults(handler=_ledger_checkpoint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "state_dir", None) is None:
        args.state_dir = default_state_dir()
    handler: Handler = args.handler
    try:
        return handler(args)
    except PhasegateError as e:
        print(
            json.dumps(e.to_body(), indent=2) if args.json else f"error: {e.message}",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE if isinstance(e, StoreError) else EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
