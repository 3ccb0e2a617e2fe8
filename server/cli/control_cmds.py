"""`phasegate freeze|unfreeze|pause|resume`: the kill switch and the promotion pause."""

from __future__ import annotations

import argparse
from typing import Any

from .common import EXIT_OK, Handler, emit, supervisor, with_enforcer

__all__ = ["register"]


def _control(control: str, active: bool) -> Handler:
    def run(args: argparse.Namespace) -> int:
        result = with_enforcer(
            args,
            lambda e: e.set_control(supervisor(args), control, active, args.reason),
            write=True,
        )
        emit(
            args,
            result,
            f"frozen: {result['frozen']}   promotions paused: {result['promotions_paused']}",
        )
        return EXIT_OK

    return run


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, control, active, text in (
        ("freeze", "freeze", True, "stop every mutating tool (kill switch)"),
        ("unfreeze", "freeze", False, "lift the freeze"),
        ("pause", "promotions_paused", True, "pause module promotions"),
        ("resume", "promotions_paused", False, "resume module promotions"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--reason", required=True)
        p.set_defaults(handler=_control(control, active))
