"""The pages a supervisor reads: the board, a task's timeline, a diff, the ledger, the controls.

Each is server-rendered from the enforcer's facade and has a JSON twin (``?format=json``) with
the same data; ``?fragment=live`` renders only the part that live updates replace.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from enforcer.errors import InvalidArgumentError, LedgerFaultError, NotFoundError, StoreError
from enforcer.ledger.verify import verify_state
from enforcer.model import check_task_id
from enforcer.phases import Phase

from .auth import signed_in
from .context import WebState
from .diffs import parse_unified
from .render import page
from .render import when as _when

__all__ = [
    "board",
    "controls_page",
    "evidence_diff",
    "ledger_entry",
    "ledger_page",
    "task_page",
    "trace_page",
]

PHASES = [p.value for p in Phase]
_MAX_SHOWN = 256 * 1024  # evidence bytes shown inline; the rest is one click away
_JOURNAL_LINES = 200


async def _head(web: WebState) -> int:
    return await web.enforcer().ledger.head()


async def board(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    e = web.enforcer()
    tasks = await e.task_board()
    columns: dict[str, list[dict[str, Any]]] = {p: [] for p in PHASES}
    for t in tasks:  # times cut here once, not by a template filter per card
        columns[t["phase"]].append(
            {**t, "until": _when(t["lease_expires_at"]), "last": _when(t["last_activity"])}
        )
    data = {
        "head": await _head(web),
        "phases": PHASES,
        "tasks": tasks,
        "controls": await e.controls(),
        "counters": await e.counters(),
    }
    return page(request, "board.html", data, view={**view, "columns": columns})


def _journal(web: WebState, task: str) -> list[dict[str, Any]]:
    path = web.enforcer().rt.paths.evidence / task / "journal.jsonl"
    try:
        with path.open("rb") as f:
            lines = deque(f, maxlen=_JOURNAL_LINES)
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def _shown(name: str, data: bytes) -> dict[str, Any]:
    """How to show one artifact: markdown, JSON (pretty), a diff, or text; cut when large."""
    text = data[:_MAX_SHOWN].decode("utf-8", "replace")
    kind = "text"
    if name.endswith(".md"):
        kind = "markdown"
    elif name.endswith(".json"):
        try:
            text = json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False)
            kind = "json"
        except ValueError:
            kind = "text"
    elif name.endswith((".patch", ".diff")):
        kind = "diff"
    return {"kind": kind, "text": text, "cut": len(data) > _MAX_SHOWN}


async def task_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    e = web.enforcer()
    task = check_task_id(request.path_params["task"])
    status = (await e.task_status(task)).as_dict()
    entries = [x.as_dict() for x in await e.ledger.tail(1000, task)]
    evidence = []
    for record in await e.evidence_list(task):
        _, content = await e.evidence_read(task, record.phase, record.name)
        evidence.append({**record.as_dict(), "content": _shown(record.name, content)})
    data = {
        "head": await _head(web),
        "task": status,
        "phases": PHASES,
        "ledger": entries,
        "evidence": evidence,
        "journal": _journal(web, task),
        "traces": sorted({t for x in entries if (t := x["refs"].get("trace_id"))}),
        "drafts": sorted({str(d) for x in entries if (d := x["subject"].get("draft"))}),
    }
    return page(request, "task.html", data, view=view)


async def evidence_diff(request: Request, web: WebState) -> Response:
    """A patch artifact (e.g. IMPLEMENT's git_diff.patch) in the diff viewer."""
    _, view = signed_in(request, web)
    task = check_task_id(request.path_params["task"])
    phase, name = request.path_params["phase"], request.path_params["name"]
    record, content = await web.enforcer().evidence_read(task, phase, name)
    text = content.decode("utf-8", "replace")
    if request.query_params.get("format") == "patch":
        return PlainTextResponse(text)
    diff = parse_unified(text)
    data = {
        "title": f"{task} {phase}/{name}",
        "source": record.as_dict(),
        "diff": diff,
        "back": f"/tasks/{task}",
        "raw": f"{request.url.path}?format=patch",
    }
    return page(request, "diff.html", data, view=view)


async def ledger_status(web: WebState) -> dict[str, Any]:
    """The offline verifier's verdict on the whole ledger, and the newest checkpoint.

    Verification re-reads every entry, so it runs in a thread and is kept while the head is
    unchanged (a growing ledger is verified again)."""
    e = web.enforcer()
    head = await e.ledger.head()
    cached = web.verify_cache.get("ledger")
    if isinstance(cached, dict) and cached.get("head") == head:
        return cached
    try:
        report = await asyncio.to_thread(verify_state, web.state_dir)
        verdict: dict[str, Any] = report.as_dict()
    except LedgerFaultError as fault:
        verdict = {"ok": False, "fault": fault.kind, "seq": fault.seq, "message": fault.message}
    except StoreError as fault:
        verdict = {"ok": False, "fault": "unreadable", "seq": None, "message": fault.message}
    try:
        cp = e.ledger.latest_checkpoint()
        checkpoint = (
            None if cp is None else {"size": cp.size, "root": cp.root.hex(), "origin": cp.origin}
        )
    except (ValueError, OSError) as fault:  # CheckpointError is a ValueError
        checkpoint = {"error": str(fault)}
    result = {"head": head, "verification": verdict, "checkpoint": checkpoint}
    web.verify_cache["ledger"] = result
    return result


async def ledger_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    limit = request.query_params.get("limit", "100")
    count = int(limit) if limit.isdigit() else 100
    entries = [x.as_dict() for x in await web.enforcer().ledger.tail(min(max(count, 1), 1000))]
    data = {**(await ledger_status(web)), "entries": list(reversed(entries))}
    return page(request, "ledger.html", data, view=view)


async def ledger_entry(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    seq = request.path_params["seq"]
    entry = await web.enforcer().ledger.get(seq)
    if entry is None:
        raise NotFoundError(f"no ledger entry with seq {seq}", hint="", details={"seq": seq})
    data = {"entry": entry.as_dict()}
    return page(request, "entry.html", data, view=view)


async def trace_page(request: Request, web: WebState) -> Response:
    """The ledger entries of one trace: what ``phasegate telemetry trace ID`` prints."""
    _, view = signed_in(request, web)
    trace = request.path_params["trace"].lower()
    if not re.fullmatch(r"[0-9a-f]{32}", trace):
        raise InvalidArgumentError(f"{trace!r} is not a trace id (32 hex digits)")
    entries = [x.as_dict() for x in await web.enforcer().ledger.by_trace(trace)]
    return page(request, "trace.html", {"trace": trace, "entries": entries}, view=view)


async def controls_page(request: Request, web: WebState) -> Response:
    _, view = signed_in(request, web)
    data = {"head": await _head(web), "controls": await web.enforcer().controls()}
    return page(request, "controls.html", data, view=view)
