"""Install and rollback: the module's active pointer moves only through the guard.

Both run the same steps. First the guard (`guard.verify_version`: signature, subject, envelope
digest, manifest) and `Trees.prepare` (every file blob's digest; the version's tree built
whole, or the kept one re-checked byte for byte); any fault is ATTESTATION_INVALID, ledgered as
``module.install_refused``, with the pointer and the install path untouched. Then one
transaction checks the caller's lease (when a task is named) and the freeze, ledgers
``module.installed`` or ``module.rolled_back`` and, as its last step, swaps the install path's
symlink; if the commit fails the swap is undone. A crash between the swap and the commit leaves
a whole version at the install path and the pointer at the other: `reconcile`, run when a
server starts, moves the install path back to what the ledger says (through the guard again)
and ledgers ``module.install_repaired``. Nothing is rebuilt or deleted by a rollback: it points
at the kept tree of an earlier version, which stays installable, as does the one it left.

    await installs.install(me, "skills", 2, task="T1")
    await installs.rollback(me, "skills", "v2 breaks reviews", task="T1")   # to the previous
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ..errors import AttestationInvalidError, InvalidArgumentError, NotFoundError, StoreError
from ..ledger.keys import Verifier
from ..ledger.ops import Ops, Record, Refused
from ..model import Caller, check_task_id
from ..names import check_module_name
from ..process.work import MAX_REASON, text_arg
from ..store import Tx
from . import halt_points
from .guard import verify_version
from .lifecycle import Lifecycle
from .policy_hook import Point, PolicyRequest
from .records import ModuleRow, VersionRecord, all_modules, module_row, version_row
from .trees import Trees

__all__ = ["Installs"]

logger = logging.getLogger(__name__)


class Installs:
    def __init__(self, kit: Lifecycle, verifier: Verifier) -> None:
        self.kit = kit
        self.verifier = verifier

    def verified_tree(self, record: VersionRecord) -> Path:
        """The guard, then the version's verified tree (on a thread: it reads every blob)."""
        manifest = verify_version(record, self.kit.blobs, self.verifier)
        return self.kit.trees.prepare(record, manifest)

    async def install(
        self, caller: Caller, module: str, version: int, task: str | None = None
    ) -> dict[str, Any]:
        """Install promoted version `version` of `module` at its install path."""
        check_module_name(module)
        if task is not None:
            check_task_id(task)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgumentError("version must be a positive integer")
        async with self.kit.lock(module):
            return await self._activate(caller, module, version, task, "module.installed", {})

    async def rollback(
        self,
        caller: Caller,
        module: str,
        reason: str,
        to_version: int | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Move the pointer back to an earlier version (default: the one active before)."""
        check_module_name(module)
        reason = text_arg(reason, "reason", MAX_REASON)
        if task is not None:
            check_task_id(task)
        async with self.kit.lock(module):
            target = await self.kit.work.store.peek(
                lambda tx: _rollback_target(tx, module, to_version)
            )
            extra = {"reason": reason}
            return await self._activate(caller, module, target, task, "module.rolled_back", extra)

    async def _activate(
        self,
        caller: Caller,
        module: str,
        version: int,
        task: str | None,
        kind: str,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        record, mod = await self.kit.work.store.peek(
            lambda tx: (version_row(tx, module, version), module_row(tx, module))
        )
        subject: dict[str, Any] = {"module": module}
        if task is not None:
            subject["task"] = task
        try:
            tree = await asyncio.to_thread(self.verified_tree, record)
        except AttestationInvalidError as e:
            data = {"version": version, "action": kind, **e.details}
            refusal = Refused(e, Record("module.install_refused", subject, data))

            def refuse(tx: Tx, ops: Ops) -> None:
                raise refusal

            await self.kit.work.transact(caller, refuse)
            raise AssertionError("unreachable") from e  # pragma: no cover
        await halt_points.reach("install:materialised")
        link = Path(mod.install_path)
        swapped: list[Path | None] = []

        def commit(tx: Tx, ops: Ops) -> dict[str, Any]:
            if task is not None:
                self.kit.hold_task(tx, ops, task)
            before = module_row(tx, module).active_version
            point: Point = "install" if kind == "module.installed" else "rollback"
            request = PolicyRequest(
                point,
                module,
                None,
                task,
                ops.caller.actor,
                (),
                version=version,
                role=ops.caller.role,
            )
            refused = Record(
                "module.install_refused", subject, {"version": version, "action": kind}
            )
            decision = self.kit.obey(tx, ops, request, denied=refused)
            data = {
                "version": version,
                "from_version": before,
                "bundle_sha256": record.bundle_sha256,
                "attestation_sha256": record.attestation_sha256,
                "install_path": mod.install_path,
                "tree": str(tree),
                **extra,
                **decision.ledger_fields(),
            }
            ops.emit(tx, Record(kind, subject, data))
            previous = Trees.target(link)
            try:
                Trees.point(link, tree)  # the last step: the commit follows at once
            except OSError as e:  # nothing moved: the rename is the swap
                raise StoreError(f"cannot point {link} at the new tree: {e}") from e
            swapped.append(previous)
            halt_points.halt_if_asked("install:swapped")
            return {"module": module, **data}

        try:
            result = await self.kit.work.transact(caller, commit)
        except BaseException:
            if swapped:
                Trees.unpoint(link, swapped[0])
            raise
        await halt_points.reach("install:committed")
        return result

    async def reconcile(self, caller: Caller) -> list[dict[str, Any]]:
        """At start: every install path points at its module's active version, repairing those
        a crash left pointing elsewhere (through the guard). Returns one line per module."""
        modules = await self.kit.work.store.peek(all_modules)
        out = []
        for mod in modules:
            async with self.kit.lock(mod.module):
                out.append(await self._reconcile(caller, mod))
        return out

    async def _reconcile(self, caller: Caller, mod: ModuleRow) -> dict[str, Any]:
        link = Path(mod.install_path)
        swept = await asyncio.to_thread(self.kit.trees.sweep, mod.module, link)
        line: dict[str, Any] = {"module": mod.module, "active": mod.active_version, "swept": swept}
        if mod.active_version is None:
            return {**line, "consistent": Trees.target(link) is None, "repaired": False}
        record = await self.kit.work.store.peek(
            lambda tx: version_row(tx, mod.module, mod.active_version or 0)
        )
        expected = self.kit.trees.version_dir(mod.module, record.version, record.bundle_sha256)
        found = Trees.target(link)
        if found == expected and expected.is_dir():
            return {**line, "consistent": True, "repaired": False}
        try:
            tree = await asyncio.to_thread(self.verified_tree, record)
        except AttestationInvalidError as e:
            logger.error("%s: cannot repair its install path: %s", mod.module, e.message)
            return {**line, "consistent": False, "repaired": False, "fault": e.details["fault"]}
        Trees.point(link, tree)
        data = {"version": record.version, "found": None if found is None else str(found)}
        await self.kit.work.transact(
            caller,
            lambda tx, ops: ops.emit(
                tx, Record("module.install_repaired", {"module": mod.module}, data)
            ),
            through_freeze=True,  # restores what the ledger already says; decides nothing new
        )
        logger.warning(
            "%s: install path pointed at %s; repaired to v%s", mod.module, found, record.version
        )
        return {**line, "consistent": True, "repaired": True}

    def status(self, mod: ModuleRow, record: VersionRecord | None) -> dict[str, Any]:
        """Where the install path points and whether that is the active version's tree."""
        found = Trees.target(Path(mod.install_path))
        expected = None
        if record is not None:
            expected = self.kit.trees.version_dir(mod.module, record.version, record.bundle_sha256)
        return {
            "installed_tree": None if found is None else str(found),
            "consistent": found == expected and (expected is None or expected.is_dir()),
        }


def _rollback_target(tx: Tx, module: str, to_version: int | None) -> int:
    mod = module_row(tx, module)
    active = mod.active_version
    if active is None:
        raise NotFoundError(f"module {module} has no active version to roll back from")
    if to_version is not None:
        if not isinstance(to_version, int) or isinstance(to_version, bool) or to_version < 1:
            raise InvalidArgumentError("to_version must be a positive integer")
        if to_version >= active:
            raise InvalidArgumentError(
                f"v{to_version} is not earlier than the active v{active}",
                hint="rollback goes back; module_install moves to any promoted version",
                details={"argument": "to_version"},
            )
        version_row(tx, module, to_version)
        return to_version
    found = tx.one(
        "SELECT version FROM module_activations WHERE module = ? AND version < ?"
        " ORDER BY seq DESC LIMIT 1",
        (module, active),
    )
    if found is None:
        raise NotFoundError(
            f"module {module} has no earlier active version than v{active}",
            hint="name one with to_version; module_versions lists them",
        )
    return int(found[0])
