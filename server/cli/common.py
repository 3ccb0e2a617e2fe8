"""What every `phasegate` command shares: exit codes, output, the supervisor's identity, opening
the state directory (never creating one by mistake) and the configuration check.

Exit codes: 0 done (or everything verified), 1 refused or a failed check (tampering, a
refusal), 2 unusable input (no state there, a bad argument, an unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from enforcer.config import Config, config_path, load_config
from enforcer.errors import InvalidArgumentError, LedgerFaultError, NotFoundError, StoreError
from enforcer.model import Caller
from enforcer.paths import StatePaths

__all__ = [
    "EXIT_FAULT",
    "EXIT_OK",
    "EXIT_UNREADABLE",
    "Handler",
    "UsageError",
    "checked",
    "cli_config",
    "emit",
    "require_state",
    "short",
    "store_url",
    "supervisor",
    "terminal_safe",
    "with_enforcer",
]

EXIT_OK = 0
EXIT_FAULT = 1
EXIT_UNREADABLE = 2

Handler = Callable[[argparse.Namespace], int]


class UsageError(InvalidArgumentError):
    """A command-line argument the command cannot use (exit 2)."""


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print `payload` as JSON with --json, else the human `text`."""
    print(json.dumps(payload, indent=2, sort_keys=True) if args.json else text)


# C0 and C1 controls, DEL, and the bidirectional overrides that can reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINES = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str, *, keep_lines: bool = False) -> str:
    """Agent-written text as a terminal may show it: every control character (escape sequences
    that move the cursor, retitle the window or hide text) and bidi override made visible as
    its escape. `keep_lines` keeps newlines and tabs (for artifact contents)."""
    pattern = _UNSAFE if keep_lines else _UNSAFE_LINES
    return pattern.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def short(digest: str | None, n: int = 12) -> str:
    """A hash cut for an 80-column line ('-' when absent)."""
    return "-" if not digest else digest[:n]


def supervisor(args: argparse.Namespace) -> Caller:
    """CLI callers are admins: whoever can run the CLI on the state directory owns it."""
    name = args.actor or os.environ.get("USER") or "supervisor"
    return Caller(actor=name, role="admin", instance=f"cli-{os.getpid()}", pid=os.getpid())


def cli_config(args: argparse.Namespace) -> Config:
    """The configuration, through the one loader every command uses: unknown keys and unknown
    tool names are refused alike, naming them."""
    from ..catalogue import TOOLS

    return load_config(
        args.config, state_dir=args.state_dir, tools=frozenset(t.name for t in TOOLS)
    )


def store_url(args: argparse.Namespace) -> str | None:
    """--store, else ``[store] url`` of the configuration, else None (SQLite)."""
    if getattr(args, "store", None):
        return str(args.store)
    return cli_config(args).store.url


def require_state(state_dir: Path, url: str | None = None) -> None:
    """Refuse a directory that holds no phasegate state: a mistyped --state-dir must never
    create a fresh, empty state and report success on it. Over PostgreSQL (`url`) the state
    directory still holds the keys, checkpoints and evidence every server shares."""
    paths = StatePaths(state_dir)
    if not (paths.keys.is_dir() if url is not None else paths.db.is_file()):
        raise NotFoundError(
            f"no phasegate state in {state_dir}",
            hint="pass the --state-dir of a server's state (phasegate serve or phasegate demo"
            " create one)",
            details={"state_dir": str(state_dir)},
        )


def with_enforcer(
    args: argparse.Namespace, fn: Callable[[Any], Awaitable[Any]], *, write: bool = False
) -> Any:
    """Run `fn` on an enforcer over an existing state directory (read or write)."""
    from enforcer.runtime import open_runtime
    from enforcer.service import Enforcer

    config = cli_config(args)
    url = store_url(args)
    require_state(args.state_dir, url)

    async def run() -> Any:
        async with open_runtime(
            args.state_dir,
            config=config,
            checkpoint_on_close=write,
            store_url=url,
            config_file=config_path(args.config, args.state_dir),
        ) as rt:
            return await fn(Enforcer(rt))

    return asyncio.run(run())


def checked(args: argparse.Namespace, check: Callable[[Path, str | None], Any]) -> tuple[Any, int]:
    """Run a verifier over the state directory and its store: (its report, EXIT_OK), or (None,
    the exit code) after printing the fault."""
    try:
        return check(args.state_dir, store_url(args)), EXIT_OK
    except LedgerFaultError as e:
        emit(
            args,
            {"ok": False, "fault": e.kind, "seq": e.seq, "message": e.message},
            f"FAIL {e.kind} at seq {e.seq}: {e.message}",
        )
        return None, EXIT_FAULT
    except StoreError as e:
        emit(
            args,
            {"ok": False, "fault": "unreadable", "message": e.message},
            f"UNREADABLE: {e.message}",
        )
        return None, EXIT_UNREADABLE


def print_error(args: argparse.Namespace, body: dict[str, Any]) -> None:
    """An error as one line (and its hint), or as the JSON body with --json; on stderr."""
    err = body["error"]
    if getattr(args, "json", False):
        print(json.dumps(body, indent=2, sort_keys=True), file=sys.stderr)
        return
    print(f"error: {err['message']}", file=sys.stderr)
    if err.get("hint"):
        print(f"hint: {err['hint']}", file=sys.stderr)
