"""`phasegate export [--since T] [--until T] --out DIR` and `phasegate export verify DIR`."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from enforcer.clock import rfc3339

from .common import EXIT_FAULT, EXIT_OK, EXIT_UNREADABLE, UsageError, emit, with_enforcer

__all__ = ["register"]


def _instant(text: str) -> str:
    """An RFC 3339 time (a date alone means its midnight, UTC) in the ledger's own form."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone (e.g. a final Z)")
    return rfc3339(moment)


def _export(args: argparse.Namespace) -> int:
    from enforcer.export import build_export

    if args.export_command == "verify":
        return _verify(args)
    if args.out is None:
        raise UsageError("phasegate export needs --out DIR (or: phasegate export verify DIR)")

    async def run(e: Any) -> Any:
        return await build_export(e.rt, args.out, since=args.since, until=args.until)

    result = with_enforcer(args, run, write=True).as_dict()
    emit(
        args,
        result,
        f"exported {result['entries']} entries (seq {result['first_seq']} to"
        f" {result['last_seq']}) to {result['out']}; check it: phasegate export verify"
        f" {result['out']}",
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from enforcer.export import verify_export
    from enforcer.export.check import bundle_key
    from enforcer.ledger.keys import Verifier

    directory: Path = args.bundle
    try:
        key = (
            Verifier.from_vkey(Path(args.public_key).read_text())
            if args.public_key
            else bundle_key(directory)
        )
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read the public key: {e}") from None
    faults = verify_export(directory, key)
    pinned = "the given key" if args.public_key else "the key shipped in the bundle"
    report = {
        "ok": not faults,
        "key_id": key.key_id.hex(),
        "key": pinned,
        "faults": [f.as_dict() for f in faults],
    }
    lines = [f"FAIL {f.kind}" + (f" at seq {f.seq}" if f.seq is not None else "") + f": {f.message}"
             for f in faults]  # fmt: skip
    ok_line = f"OK: the bundle verifies against {pinned} (key id {key.key_id.hex()})"
    emit(args, report, "\n".join(lines) if faults else ok_line)
    if not directory.is_dir():
        return EXIT_UNREADABLE
    return EXIT_FAULT if faults else EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export", parents=[common], help="signed compliance bundle (JSON + PDF), or verify one"
    )
    p.add_argument("--since", type=_instant, default=None, help="entries from this time")
    p.add_argument("--until", type=_instant, default=None, help="entries up to this time")
    p.add_argument("--out", type=Path, default=None, help="a new directory for the bundle")
    esub = p.add_subparsers(dest="export_command", required=False)
    v = esub.add_parser("verify", parents=[common], help="check a bundle offline")
    v.add_argument("bundle", type=Path)
    v.add_argument("--public-key", default=None, help="the server's ed25519.pub to pin")
    p.set_defaults(handler=_export, export_command=None)
