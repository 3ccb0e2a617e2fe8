"""`phasegate ledger verify|tail|show|checkpoint` and `phasegate verify` (the whole state)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import (
    EXIT_FAULT,
    EXIT_OK,
    UsageError,
    checked,
    emit,
    require_state,
    short,
    store_url,
    terminal_safe,
)
from .common import with_enforcer as _with_enforcer

__all__ = ["register"]

MAX_TAIL = 10_000


def _seq(text: str) -> int:
    """A ledger sequence number: 0 to 2**53 - 1 (entries hold no larger integer)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**53:
        raise argparse.ArgumentTypeError(f"{text} is not a ledger seq (0 to 2**53 - 1)")
    return value


def _ledger_verify(args: argparse.Namespace) -> int:
    from enforcer.ledger.verify import verify_state

    report, code = checked(args, verify_state)
    if report is None:
        return code
    emit(
        args,
        report.as_dict(),
        f"OK {report.entries} entries, root {short(report.root, 16)},"
        f" {report.checkpoints} checkpoints (newest at size {report.latest_checkpoint_size})",
    )
    return EXIT_OK


def _subject(subject: dict[str, Any]) -> str:
    """The task first (what a supervisor scans for), then the rest by name."""
    keys = sorted(subject, key=lambda k: (k != "task", k))
    return terminal_safe(" ".join(f"{k}={subject[k]}" for k in keys))


def _ledger_tail(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_TAIL:
        raise UsageError(f"--limit must be from 1 to {MAX_TAIL}, not {args.limit}")
    found = _with_enforcer(args, lambda e: e.ledger.tail(args.limit, args.task))
    entries = [e.as_dict() for e in found]
    if args.json:
        print(json.dumps(entries, indent=2))
        return EXIT_OK
    for e in entries:
        # seq, time to the second, actor, type, subject: cut to fit 80 columns
        line = f"{e['seq']:>6} {e['ts'][:19]} {e['actor'][:12]:<12} {e['type']:<22} "
        print((line + _subject(e["subject"]))[:80].rstrip())
    return EXIT_OK


def _ledger_show(args: argparse.Namespace) -> int:
    entry = _with_enforcer(args, lambda e: e.ledger.get(args.seq))
    found = None if entry is None else entry.as_dict()
    if found is None:
        emit(args, {"found": False, "seq": args.seq}, f"no ledger entry with seq {args.seq}")
        return EXIT_FAULT
    trace = found["refs"].get("trace_id", "-")
    emit(args, found, json.dumps(found, indent=2, sort_keys=True) + f"\ntrace_id: {trace}")
    return EXIT_OK


def _ledger_checkpoint(args: argparse.Namespace) -> int:
    cp = _with_enforcer(args, lambda e: e.ledger.checkpoint(), write=True)
    root = None if cp is None else cp.root.hex()
    result = {"size": 0 if cp is None else cp.size, "root": root}
    emit(args, result, f"checkpoint at size {result['size']} root {short(root, 16)}")
    return EXIT_OK


def _verify_all(args: argparse.Namespace) -> int:
    from enforcer.integrity import check_integrity

    require_state(args.state_dir, store_url(args))
    report, code = checked(args, check_integrity)
    if report is None:
        return code
    d = report.as_dict()
    emit(
        args,
        d,
        f"OK ledger {d['entries']} entries, {d['checkpoints']} checkpoints;"
        f" {d['blobs_checked']} evidence blobs, {d['evidence_files_checked']} evidence files;"
        f" projection ({d['projection_rows']} rows) equals a replay of the ledger;"
        f" {d['module_versions_checked']} module versions (signatures, manifests,"
        f" {d['module_blobs_checked']} blobs), {d['installed_trees_checked']} installed trees",
    )
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify",
        parents=[common],
        help="full integrity check: ledger, checkpoints, evidence, projection",
    )
    p.set_defaults(handler=_verify_all)

    ledger = sub.add_parser("ledger", help="read and verify the ledger")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True)
    p = lsub.add_parser("verify", parents=[common], help="verify hashes, links, checkpoints")
    p.set_defaults(handler=_ledger_verify)
    p = lsub.add_parser("tail", parents=[common], help="the newest entries")
    p.add_argument("--limit", type=int, default=20, help=f"how many (1 to {MAX_TAIL})")
    p.add_argument("--task", default=None, help="only this task's entries")
    p.set_defaults(handler=_ledger_tail)
    p = lsub.add_parser("show", parents=[common], help="one entry, with its trace id")
    p.add_argument("seq", type=_seq)
    p.set_defaults(handler=_ledger_show)
    p = lsub.add_parser("checkpoint", parents=[common], help="sign a checkpoint now")
    p.set_defaults(handler=_ledger_checkpoint)
