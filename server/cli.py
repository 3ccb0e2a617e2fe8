"""The `phasegate` command: the server entry point and the supervisor's commands.

Exit codes of verifying commands: 0 everything holds, 1 tampering or a failed check,
2 unreadable input (no database, no key, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from enforcer.errors import LedgerFaultError, PhasegateError, StoreError
from enforcer.paths import default_state_dir

EXIT_OK = 0
EXIT_FAULT = 1
EXIT_UNREADABLE = 2

Handler = Callable[[argparse.Namespace], int]


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True) if args.json else text)


def _ledger_verify(args: argparse.Namespace) -> int:
    from enforcer.verify import verify_state

    try:
        report = verify_state(args.state_dir)
    except LedgerFaultError as e:
        _emit(
            args,
            {"ok": False, "fault": e.kind, "seq": e.seq, "message": e.message},
            f"FAIL {e.kind} at seq {e.seq}: {e.message}",
        )
        return EXIT_FAULT
    except StoreError as e:
        _emit(
            args,
            {"ok": False, "fault": "unreadable", "message": e.message},
            f"UNREADABLE: {e.message}",
        )
        return EXIT_UNREADABLE
    _emit(
        args,
        report.as_dict(),
        f"OK {report.entries} entries, root {report.root}, {report.checkpoints} checkpoints"
        f" (newest at size {report.latest_checkpoint_size})",
    )
    return EXIT_OK


def _ledger_tail(args: argparse.Namespace) -> int:
    from enforcer.runtime import open_runtime

    async def run() -> list[dict[str, Any]]:
        async with open_runtime(args.state_dir, config_path=args.config) as rt:
            return [e.as_dict() for e in await rt.ledger.tail(args.limit, args.task)]

    entries = asyncio.run(run())
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        for e in entries:
            subject = " ".join(f"{k}={v}" for k, v in sorted(e["subject"].items()))
            print(f"{e['seq']:>7} {e['ts']} {e['actor']:<16} {e['type']:<24} {subject}")
    return EXIT_OK


def _ledger_show(args: argparse.Namespace) -> int:
    from enforcer.runtime import open_runtime

    async def run() -> dict[str, Any] | None:
        async with open_runtime(args.state_dir, config_path=args.config) as rt:
            entry = await rt.ledger.get(args.seq)
            return None if entry is None else entry.as_dict()

    found = asyncio.run(run())
    if found is None:
        print(f"no ledger entry with seq {args.seq}", file=sys.stderr)
        return EXIT_FAULT
    trace = found["refs"].get("trace_id", "-")
    _emit(args, found, json.dumps(found, indent=2, sort_keys=True) + f"\ntrace_id: {trace}")
    return EXIT_OK


def _ledger_checkpoint(args: argparse.Namespace) -> int:
    from enforcer.runtime import open_runtime

    async def run() -> dict[str, Any]:
        async with open_runtime(args.state_dir, config_path=args.config) as rt:
            cp = await rt.ledger.checkpoint()
            return {
                "size": 0 if cp is None else cp.size,
                "root": None if cp is None else cp.root.hex(),
            }

    result = asyncio.run(run())
    _emit(args, result, f"checkpoint at size {result['size']} root {result['root']}")
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
    sub = parser.add_subparsers(dest="command", required=True)

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
