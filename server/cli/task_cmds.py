"""`phasegate status`, `evidence list|show`, `lease break` and `attest rebaseline`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from enforcer.model import check_task_id

from .common import EXIT_OK, UsageError, emit, short, supervisor, terminal_safe, with_enforcer

__all__ = ["register"]


def _status(args: argparse.Namespace) -> int:
    async def run(e: Any) -> dict[str, Any]:
        if args.task:
            return dict((await e.task_status(args.task)).as_dict())
        return {
            "tasks": await e.task_list(),
            "controls": await e.controls(),
            "counters": await e.counters(),
        }

    if args.task:
        check_task_id(args.task)
    result = with_enforcer(args, run)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.task:
        _print_task(result)
    else:
        _print_board(result)
    return EXIT_OK


def _print_task(result: dict[str, Any]) -> None:
    title = terminal_safe(result["title"])
    print(f"{result['task']}  {result['phase']}  epoch {result['epoch']}  {title}"[:80])
    lease = result["lease"] or {}
    if lease.get("active"):
        print(
            f"  lease: {lease['holder']} (token {lease['fencing_token']},"
            f" until {lease['expires_at']})"[:80]
        )
    else:
        print("  lease: free")
    gate = "passes" if result["gate"]["passed"] else "blocked"
    print(f"  gate {gate}; drift: {result['drift'] or 'none'}")
    for hint in result["hints"]:
        print(f"  - {terminal_safe(hint)}"[:80])


def _print_board(result: dict[str, Any]) -> None:
    c = result["controls"]
    print(f"frozen: {c['frozen']}   promotions paused: {c['promotions_paused']}")
    for t in result["tasks"]:
        holder = (t["holder"] or "-")[:20]
        line = f"{t['task'][:24]:<24} {t['phase']:<10} e{t['epoch']:<3} {holder:<20}"
        print(f"{line} {terminal_safe(t['title'])}"[:80].rstrip())
    if result["counters"]:
        counters = ", ".join(f"{k}={v}" for k, v in sorted(result["counters"].items()))
        print(_wrap("counters: " + counters))


def _wrap(text: str, width: int = 80) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width, subsequent_indent="  "))


def _evidence_list(args: argparse.Namespace) -> int:
    records = with_enforcer(args, lambda e: e.evidence_list(args.task, args.phase))
    rows = [r.as_dict() for r in records]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        mark = "ok " if r["valid"] else "BAD"
        print(
            f"{mark} {r['phase']:<10} {r['name'][:24]:<24} e{r['epoch']:<2} {r['producer']:<6}"
            f" {short(r['sha256'])} {r['size']}B"[:80]
        )
    return EXIT_OK


def _evidence_show(args: argparse.Namespace) -> int:
    rec, data = with_enforcer(args, lambda e: e.evidence_read(args.task, args.phase, args.name))
    if args.json:
        body = {"record": rec.as_dict(), "content": data.decode("utf-8", "replace")}
        print(json.dumps(body, indent=2))
    else:
        sys.stdout.write(terminal_safe(data.decode("utf-8", "replace"), keep_lines=True))
    return EXIT_OK


def _lease_break(args: argparse.Namespace) -> int:
    result = with_enforcer(
        args,
        lambda e: e.lease_break(supervisor(args), args.task, args.reason, args.phase),
        write=True,
    )
    emit(
        args,
        result,
        f"lease on {result['task']} {result['phase']}: "
        + (f"broken (was {result['holder']})" if result["broken"] else "was not held"),
    )
    return EXIT_OK


def _read_prompt(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"cannot read --prompt-file {path}: {why}") from None


def _rebaseline(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args.prompt_file)
    result = with_enforcer(
        args,
        lambda e: e.prompt_rebaseline(supervisor(args), args.task, args.reason, prompt, args.phase),
        write=True,
    )
    emit(
        args,
        result,
        f"{result['task']} {result['phase']}: baseline v{result['version']}"
        f" {short(result['sha256'], 16)}",
    )
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="tasks, controls and counters")
    p.add_argument("task", nargs="?", default=None, help="one task in detail")
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
    lsub = lease.add_subparsers(dest="lease_command", required=True)
    p = lsub.add_parser("break", parents=[common], help="end the lease on a task's phase")
    p.add_argument("task")
    p.add_argument("--reason", required=True)
    p.add_argument("--phase", default=None, help="default: the task's current phase")
    p.set_defaults(handler=_lease_break)

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
