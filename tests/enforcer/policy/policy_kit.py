"""Helpers for the policy tests: an enforcer whose configuration comes from a real
``phasegate.toml`` (so the policy can be changed under it), a ManualClock, the module
``skills`` registered (v1 installed) and task T1 held by ALICE; drafts made and validated by
the real sandbox, promoted and installed through the real lifecycle.

Nothing of phasegate is replaced: the file, the SQLite store, the validator subprocess and the
ledger are the real ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modules_kit import make_module_dir, validator
from phasegate_testkit import ALICE, ROOT, entries

from enforcer.clock import ManualClock
from enforcer.errors import PhasegateError
from enforcer.ledger.entries import LedgerEntry
from enforcer.model import Caller
from enforcer.phases import ORDER, Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer

__all__ = ["ALICE", "ROOT", "PolicyWorld", "heading", "lines", "policy_world", "refusal"]

# Every gate empty, so the tests never need evidence; the policy comes after.
GATES = "".join(f"[gates.{p.value}]\nartifacts = []\n" for p in ORDER if p is not Phase.DONE)
THURSDAY = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # 2026-01-01 is a Thursday


def heading(title: str, body_lines: int = 1) -> str:
    """Markdown the module's validator accepts (it wants a '# ' heading first)."""
    return f"# {title}\n" + "".join(f"line {i}\n" for i in range(body_lines))


def lines(n: int) -> str:
    return heading("many", n - 1)


@dataclass
class PolicyWorld:
    e: Enforcer
    clock: ManualClock
    config: Path
    state: Path
    install: Path
    tmp: Path

    def installed_text(self, rel: str) -> str:
        return (self.install / rel).read_text()

    def write_policy(self, policy: str) -> None:
        """Replace phasegate.toml (gates stay empty) with `policy` as its policy part."""
        write_config(self.config, policy)

    async def later(self, seconds: float, caller: Caller = ALICE, task: str = "T1") -> None:
        """Move the clock on; the agent takes its (expired) lease on the task again."""
        self.clock.advance(seconds)
        await self.e.lease_acquire(caller, task)

    async def promoted(self, files: dict[str, str | None], **kw: Any) -> int:
        """A LOW draft promoted: its version."""
        draft = await self.draft(files, **kw)
        caller = kw.get("caller", ALICE)
        return int((await self.e.modules.draft_promote(caller, draft))["version"])

    async def newest(self, module: str = "skills") -> int:
        return int((await self.e.modules.module_versions(module))["versions"][-1]["version"])

    async def draft(
        self,
        files: dict[str, str | None],
        *,
        module: str = "skills",
        caller: Caller = ALICE,
        task: str = "T1",
        validate: bool = True,
    ) -> str:
        """A draft of the newest version with `files` written (None deletes), validated."""
        m = self.e.modules
        d = await m.draft_create(caller, task, module, await self.newest(module))
        for path, text in files.items():
            if text is None:
                await m.draft_delete_file(caller, d["draft"], path)
            else:
                await m.draft_write(caller, d["draft"], path, text)
        if validate:
            out = await m.draft_validate(caller, d["draft"])
            assert out["state"] == "VALIDATED", out
        return str(d["draft"])

    async def register(self, module: str) -> None:
        source = make_module_dir(self.tmp / f"src-{module}")
        await self.e.modules.module_add(
            ROOT, module, source, self.tmp / "live" / module, validator()
        )

    async def ledger(self, type_: str | None = None) -> list[LedgerEntry]:
        found = await entries(self.e)
        return [x for x in found if type_ is None or x.type == type_]


def write_config(path: Path, policy: str) -> None:
    path.write_text(GATES + policy)


async def refusal(call: Any) -> PhasegateError:
    """Await `call`, which must be refused; the error."""
    try:
        await call
    except PhasegateError as e:
        return e
    raise AssertionError("the call was not refused")


@contextlib.asynccontextmanager
async def policy_world(
    tmp_path: Path, policy: str = "", start: datetime = THURSDAY, store_url: str | None = None
) -> AsyncIterator[PolicyWorld]:
    config = tmp_path / "phasegate.toml"
    write_config(config, policy)
    clock = ManualClock(start)
    state = tmp_path / "state"
    source = make_module_dir(tmp_path / "src")
    install = tmp_path / "live" / "skills"
    async with open_runtime(state, config_path=config, clock=clock, store_url=store_url) as rt:
        e = Enforcer(rt)
        await e.modules.module_add(ROOT, "skills", source, install, validator())
        await e.task_start(ALICE, "change the skills", "T1")
        yield PolicyWorld(e, clock, config, state, install, tmp_path)
