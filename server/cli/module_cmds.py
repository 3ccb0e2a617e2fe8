"""`phasegate module add|list|versions|install|rollback`: the supervisor's side of governed
modules. `add` may create the state directory (it is how a module's life begins); the others
need an existing one. Every action is ledgered with the supervisor's identity (--actor).

    phasegate module add skills --from ./skills --install-to /opt/skills -- python -m pytest -q
    phasegate module versions skills --json
    phasegate module rollback skills --to 1 --reason "v2 breaks reviews"
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enforcer.errors import PhasegateError
from enforcer.names import check_module_name

from .common import EXIT_OK, UsageError, cli_config, emit, short, supervisor, with_enforcer

__all__ = ["register"]


# The enforcer's hints name MCP tools (for agents); at the terminal, the command to run.
_HINTS = {
    "NOT_FOUND": "phasegate module list shows the modules; phasegate module versions NAME"
    " their versions",
    "ATTESTATION_INVALID": "nothing moved; phasegate verify names every fault",
    "CONFLICT": "phasegate module versions NAME shows the versions and the active one",
    "INVALID_ARGUMENT": "phasegate module list shows the modules by name",
}


def _terminal_hints(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except PhasegateError as e:
            from ..catalogue import TOOLS

            if not e.hint or any(t.name in e.hint for t in TOOLS):
                e.hint = _HINTS.get(e.code, e.hint)
            raise

    return run


def _add(args: argparse.Namespace) -> int:
    from enforcer.runtime import open_runtime
    from enforcer.service import Enforcer

    check_module_name(args.name)
    validator = list(args.argv)
    if not validator:
        raise UsageError(
            "no validator: put its argv after --",
            hint="phasegate module add NAME --from DIR --install-to DIR -- python -m pytest -q",
        )
    if args.timeout_s < 1:
        raise UsageError("--timeout-s must be at least 1")
    config = cli_config(args)

    async def run() -> dict[str, Any]:
        async with open_runtime(args.state_dir, config=config) as rt:
            return await Enforcer(rt).modules.module_add(
                supervisor(args),
                args.name,
                Path(args.source),
                Path(args.install_to),
                validator,
                args.timeout_s,
            )

    result = asyncio.run(run())
    emit(
        args,
        result,
        f"{result['module']} v1 registered: {result['files']} files, {result['bytes']} bytes,"
        f" bundle {short(result['bundle_sha256'])}\n"
        f"installed at {result['install_path']}\n"
        f"validator: {' '.join(result['validator'])} (timeout {result['timeout_s']} s)",
    )
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    rows = with_enforcer(args, lambda e: e.modules.module_list())
    if args.json:
        emit(args, rows, "")
        return EXIT_OK
    if not rows:
        print("no modules (phasegate module add registers one)")
    for m in rows:
        state = "ok" if m["consistent"] else "INCONSISTENT"
        print(f"{m['module']:<20} active v{m['active']} newest v{m['newest']}  {state}")
        print(f"  {m['install_path']}"[:80])
    return EXIT_OK


def _versions(args: argparse.Namespace) -> int:
    check_module_name(args.name)
    found = with_enforcer(args, lambda e: e.modules.module_versions(args.name))
    if args.json:
        emit(args, found, "")
        return EXIT_OK
    state = "consistent" if found["consistent"] else "INCONSISTENT"
    print(f"{found['module']}: active v{found['active']}, newest v{found['newest']} ({state})")
    for v in found["versions"]:
        mark = "*" if v["active"] else " "
        origin = "imported" if v["draft"] is None else f"from v{v['source_version']} {v['draft']}"
        print(
            f"{mark} v{v['version']:<3} {short(v['bundle_sha256'])} {v['files']:>5} files"
            f" {v['created_at'][:19]} {v['created_by'][:12]:<12} {origin}"[:80]
        )
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    check_module_name(args.name)
    result = with_enforcer(
        args,
        lambda e: e.modules.module_install(supervisor(args), args.name, args.version),
        write=True,
    )
    emit(args, result, _moved(result, "installed"))
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    check_module_name(args.name)
    result = with_enforcer(
        args,
        lambda e: e.modules.module_rollback(supervisor(args), args.name, args.reason, args.to),
        write=True,
    )
    emit(args, result, _moved(result, "rolled back to"))
    return EXIT_OK


def _moved(result: dict[str, Any], verb: str) -> str:
    was = result["from_version"]
    return (
        f"{result['module']}: {verb} v{result['version']}"
        f" (was {'none' if was is None else f'v{was}'}); signature and every digest verified\n"
        f"{result['install_path']} -> {result['tree']}"
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    module = sub.add_parser("module", help="governed modules: register, list, install, roll back")
    msub = module.add_subparsers(dest="module_command", required=True, metavar="COMMAND")

    p = msub.add_parser(
        "add",
        parents=[common],
        help="register DIR as version 1 and install it",
        usage="phasegate module add NAME --from DIR --install-to DIR [--timeout-s S]"
        " -- VALIDATOR ARGV...",
    )
    p.add_argument("name")
    p.add_argument("--from", dest="source", required=True, help="the module's files")
    p.add_argument("--install-to", required=True, help="where it is installed (must not exist)")
    p.add_argument("--timeout-s", type=int, default=600, help="the validator's wall time")
    p.set_defaults(handler=_terminal_hints(_add), takes_argv=True)  # the validator argv, after --

    p = msub.add_parser("list", parents=[common], help="modules and their active versions")
    p.set_defaults(handler=_terminal_hints(_list))
    p = msub.add_parser("versions", parents=[common], help="a module's versions")
    p.add_argument("name")
    p.set_defaults(handler=_terminal_hints(_versions))
    p = msub.add_parser("install", parents=[common], help="install a version (through the guard)")
    p.add_argument("name")
    p.add_argument("version", type=int)
    p.set_defaults(handler=_terminal_hints(_install))
    p = msub.add_parser("rollback", parents=[common], help="point back to an earlier version")
    p.add_argument("name")
    p.add_argument("--to", type=int, default=None, help="default: the previously active one")
    p.add_argument("--reason", required=True)
    p.set_defaults(handler=_terminal_hints(_rollback))
