"""The `phasegate` command: the server entry point and the supervisor's commands.

Options that every command takes (--state-dir, --config, --json, --actor, --store) may stand
before the command or after it. Exit codes: 0 done, 1 refused or a failed check, 2 unusable
input (no state in that directory, a bad argument, an unreadable file). No input prints a
traceback: errors are one line (and a hint), or the JSON error body with --json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from enforcer.errors import InvalidArgumentError, NotFoundError, PhasegateError, StoreError
from enforcer.paths import default_state_dir

from . import (
    control_cmds,
    export_cmds,
    ledger_cmds,
    module_cmds,
    policy_cmds,
    serve_cmds,
    task_cmds,
    ui_cmds,
)
from .common import EXIT_FAULT, EXIT_OK, EXIT_UNREADABLE, Handler, print_error

__all__ = ["EXIT_FAULT", "EXIT_OK", "EXIT_UNREADABLE", "build_parser", "main"]

logger = logging.getLogger(__name__)

# A domain hint names MCP tools (for agents); at the terminal the next step is a command.
_CLI_HINTS = {
    "NOT_FOUND": "phasegate status lists the tasks; phasegate ledger tail shows what happened",
    "FROZEN": "phasegate unfreeze --reason R lifts the freeze",
    "LEASE_HELD": "phasegate lease break TASK --reason R ends another holder's lease",
    "FORBIDDEN": "pass --actor NAME of an admin",
}
_COMMON = (
    ("--state-dir", {"type": Path, "help": "state directory ($PHASEGATE_STATE_DIR or ./state)"}),
    ("--config", {"type": Path, "help": "phasegate.toml to use"}),
    ("--json", {"action": "store_true", "help": "machine-readable output"}),
    ("--actor", {"help": "who you are (default: $USER)"}),
    (
        "--store",
        {
            "metavar": "URL",
            "help": "PostgreSQL URL shared by several servers (default: [store] url, else SQLite"
            " in the state directory)",
        },
    ),
)


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    for flag, kwargs in _COMMON:
        default: object = argparse.SUPPRESS if suppress else (False if "action" in kwargs else None)
        parser.add_argument(flag, default=default, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phasegate",
        description="phasegate: a governed, provable work process for AI coding agents.",
        epilog="Options of every command may stand before or after it:"
        " phasegate --state-dir D status, or phasegate status --state-dir D.",
    )
    _add_common(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)  # after the command: overrides, else the value before
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cmds.register(sub, common)
    ledger_cmds.register(sub, common)
    task_cmds.register(sub, common)
    control_cmds.register(sub, common)
    export_cmds.register(sub, common)
    module_cmds.register(sub, common)
    policy_cmds.register(sub, common)
    ui_cmds.register(sub, common)
    return parser


def _cli_hint(error: PhasegateError) -> str:
    from ..catalogue import TOOLS

    if not any(t.name in error.hint for t in TOOLS):
        return error.hint
    return _CLI_HINTS.get(error.code, "")


def _unwrapped(handler: Handler, args: argparse.Namespace) -> int:
    """Run `handler`; an exception group (the server's task groups wrap what its lifespan
    raises, such as an unreadable database) is replaced by its first leaf, so the one useful
    line is what the user sees."""
    try:
        return handler(args)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
            leaf = leaf.exceptions[0]
        if leaf is group or not isinstance(leaf, Exception):
            raise
        raise leaf from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Everything after the first "--" is an argv for the command itself (module add's
    # validator); argparse's subparsers do not pass it through, so it is split off here.
    words = list(sys.argv[1:] if argv is None else argv)
    trailing: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, trailing = words[:cut], words[cut + 1 :]
    args = parser.parse_args(words)
    if trailing and not getattr(args, "takes_argv", False):
        parser.error(f"unrecognized arguments: -- {' '.join(trailing)}")
    args.argv = trailing
    if args.state_dir is None:
        args.state_dir = default_state_dir()
    handler: Handler = args.handler
    try:
        return _unwrapped(handler, args)
    except PhasegateError as e:
        body = e.to_body()
        body["error"]["hint"] = _cli_hint(e)
        print_error(args, body)
        unusable = isinstance(e, StoreError | InvalidArgumentError) or (
            isinstance(e, NotFoundError) and "state_dir" in e.details
        )
        return EXIT_UNREADABLE if unusable else EXIT_FAULT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAULT
    except Exception as e:  # the one place allowed to catch everything: no traceback
        if os.environ.get("PHASEGATE_DEBUG"):
            raise
        logger.debug("unexpected error", exc_info=True)
        body = {
            "error": {
                "code": "INTERNAL",
                "message": f"unexpected {type(e).__name__}: {e}",
                "hint": "rerun with PHASEGATE_DEBUG=1 for the traceback, and report it",
                "details": {},
            }
        }
        print_error(args, body)
        return EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
