"""`phasegate approvals`, `approve|reject ID --note N`, `exception grant|list|revoke` and
`policy check DRAFT`: the supervisor's side of the policy (DESIGN.md, Policy and approvals).

    phasegate approvals                          the queue, pending first
    phasegate approve skills-d2-r1 --note "read the diff, fine"
    phasegate exception grant skills install_windows --until +2h --reason "INC-42 hotfix"
    phasegate policy check skills-d2             what promoting it would meet now
"""

from __future__ import annotations

import argparse
from typing import Any

from enforcer.model import Caller
from enforcer.names import check_draft_id
from enforcer.policy_config import RULES

from .common import EXIT_OK, emit, short, supervisor, with_enforcer

__all__ = ["register"]


def _when(ts: str | None) -> str:
    """'2026-01-02 12:00Z' from an RFC 3339 timestamp ('-' when absent)."""
    return "-" if not ts else f"{ts[:10]} {ts[11:16]}Z"


def _approval_line(a: dict[str, Any]) -> str:
    stats = f"{a['files']}f +{a['added']} -{a['removed']}"
    by = (a["requested_by"] or "-")[:10]
    line = f"{a['id'][:24]:<24} {a['status']:<8} {a['risk']:<6} {stats:<18} {by}"
    return line[:80].rstrip()


def _approvals(args: argparse.Namespace) -> int:
    rows = with_enforcer(args, lambda e: e.approvals.listing(args.limit))
    if args.json:
        emit(args, rows, "")
        return EXIT_OK
    if not rows:
        print("no approval requests")
        return EXIT_OK
    print(f"{'ID':<24} {'STATE':<8} {'RISK':<6} {'DIFF':<18} REQUESTED BY")
    for a in rows:
        print(_approval_line(a))
        if a["decided_by"]:
            verb = "rejected" if a["status"] == "REJECTED" else "approved"
            became = f"; promoted as v{a['version']}" if a["version"] else ""
            print(f"  {verb} by {a['decided_by']}{became}: {a['note']}"[:80])
        elif a["status"] == "PENDING":
            where = f"  draft {a['draft']} of {a['module']}, task {a['task']}"
            print(f"{where}; expires {_when(a['expires_at'])}"[:80])
    return EXIT_OK


def _decide(verb: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        me = supervisor(args)
        method = "approve" if verb == "approve" else "reject"
        result = with_enforcer(
            args, lambda e: getattr(e.approvals, method)(me, args.id, args.note), write=True
        )
        emit(
            args,
            result,
            f"{result['id']}: {result['status']} by {result['decided_by']}"
            f" ({result['risk']}, {result['draft']}, {result['files']} file(s)"
            f" +{result['added']} -{result['removed']})"[:80],
        )
        return EXIT_OK

    return run


def _exception_line(x: dict[str, Any]) -> str:
    return (
        f"{x['id']:<5} {x['status']:<8} {x['module'][:14]:<14} {x['rule']:<22}"
        f" until {_when(x['until'])}"
    )[:80]


def _grant(args: argparse.Namespace) -> int:
    me = supervisor(args)
    result = with_enforcer(
        args,
        lambda e: e.exceptions.grant(me, args.module, args.rule, args.until, args.reason),
        write=True,
    )
    emit(
        args,
        result,
        f"{result['id']}: {result['rule']} lifted for {result['module']} until"
        f" {_when(result['until'])}"[:80],
    )
    return EXIT_OK


def _exception_list(args: argparse.Namespace) -> int:
    rows = with_enforcer(args, lambda e: e.exceptions.listing(args.all))
    if args.json:
        emit(args, rows, "")
        return EXIT_OK
    if not rows:
        print("no exceptions in force" if not args.all else "no exceptions")
    for x in rows:
        print(_exception_line(x))
        print(f"  {x['reason']} (granted by {x['granted_by']})"[:80])
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    me = supervisor(args)
    result = with_enforcer(
        args, lambda e: e.exceptions.revoke(me, args.id, args.reason), write=True
    )
    emit(args, result, f"{result['id']}: {result['status']} by {result['revoked_by']}")
    return EXIT_OK


def _check_lines(r: dict[str, Any]) -> list[str]:
    d = r["details"]
    out = [f"{r['draft']} ({r['state']}): {r['decision']}", f"  {r['reason']}"]
    raised = ", ".join(d.get("raised_by", [])) or "nothing"
    out.append(
        f"  risk {r['risk']} (raised by {raised}); {r['files']} file(s) +{r['added']}"
        f" -{r['removed']}"
    )
    out.append("  rules: " + (" ".join(r["rules"]) or "-"))
    for hit in d.get("paths", [])[:5]:
        out.append(f"    {hit['path']}  ({hit['pattern']})")
    a = r["approval"]
    if a is not None:
        state = "would open" if a.get("opened") else a["status"]
        out.append(f"  approval: {a['id']} {state}; expires {_when(a['expires_at'])}")
    limits = d.get("limits")
    if limits:
        m, who, cap = limits["module"], limits["actor"], limits["max_promotions_per_day"]
        out.append(
            f"  today: {r['module']} {m['used']}/{cap}, {who['actor']} {who['used']}/{cap};"
            f" resets {_when(limits['resets_at'])}"
        )
    install = r.get("install")
    if install is not None:
        nxt = install["details"].get("next_window")
        out.append(
            f"  install now: {install['decision']}" + (f"; next {_when(nxt)}" if nxt else "")
        )
    for x in r["exceptions"]:
        out.append(f"  exception {x['id']}: {x['rule']} until {_when(x['until'])}")
    fault = d.get("policy_file_error")
    if fault:
        out.append("  phasegate.toml refused, previous policy in force: " + fault["error"])
    out.append(f"  policy {short(r['policy_set_hash'])}")
    return [line[:80] for line in out]


def _check(args: argparse.Namespace) -> int:
    check_draft_id(args.draft)
    who = None if args.as_actor is None else Caller(args.as_actor)
    result = with_enforcer(args, lambda e: e.modules.policy_check(args.draft, who))
    emit(args, result, "\n".join(_check_lines(result)))
    return EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("approvals", parents=[common], help="approval requests, pending first")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=_approvals)
    for verb, text in (("approve", "approve a pending request"), ("reject", "reject one")):
        p = sub.add_parser(verb, parents=[common], help=text)
        p.add_argument("id", help="the request id (phasegate approvals lists them)")
        p.add_argument("--note", required=True, help="why; the agent and the ledger see it")
        p.set_defaults(handler=_decide(verb))

    exc = sub.add_parser("exception", help="time-bound exceptions to one policy rule")
    xsub = exc.add_subparsers(dest="exception_command", required=True)
    p = xsub.add_parser("grant", parents=[common], help="lift RULE for MODULE until a time")
    p.add_argument("module")
    p.add_argument("rule", help="one of: " + " ".join(RULES))
    p.add_argument("--until", required=True, help="+2h, 90m, 3d or 2026-01-02T18:00Z (UTC)")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_grant)
    p = xsub.add_parser("list", parents=[common], help="exceptions in force")
    p.add_argument("--all", action="store_true", help="also expired and revoked ones")
    p.set_defaults(handler=_exception_list)
    p = xsub.add_parser("revoke", parents=[common], help="end an exception now")
    p.add_argument("id")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_revoke)

    pol = sub.add_parser("policy", help="the policy's dry run")
    psub = pol.add_subparsers(dest="policy_command", required=True)
    p = psub.add_parser("check", parents=[common], help="what promoting DRAFT would meet now")
    p.add_argument("draft")
    p.add_argument(
        "--as", dest="as_actor", default=None, help="who would promote (default: its creator)"
    )
    p.set_defaults(handler=_check)
