"""The module registry: a supervisor registers a module; anyone may list modules and versions.

Registration (admin only; `phasegate module add NAME --from DIR --install-to DIR -- ARGV…`)
reads DIR whole (`tree_import.read_tree`: regular files only, refusals named), stores its
blobs and manifest, signs version 1's attestation (its predicate says it was imported, by whom,
from where), ledgers ``module.registered`` with the validator argv and time limit, and then
installs version 1 through the same guard every install takes. The install path must not exist:
phasegate creates it, as a symlink to the active version's tree.

    await registry.register(root, "skills", Path("skills"), Path("/opt/skills"), ["pytest", "-q"])
    await registry.versions("skills")   # {"module", "active", "versions": [...]}
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from ..errors import ConflictError, InvalidArgumentError
from ..ledger.ops import Ops, Record
from ..model import Caller
from ..names import check_module_name
from ..process.work import require_admin
from ..store import Tx
from .attestation import sign_statement, statement
from .installs import Installs
from .lifecycle import Lifecycle
from .records import all_modules, all_versions, module_row
from .tree_import import read_tree, store_tree

__all__ = ["MAX_TIMEOUT_S", "Registry"]

MAX_TIMEOUT_S = 86_400


def _check_validator(validator: object, timeout_s: object) -> tuple[list[str], int]:
    if (
        not isinstance(validator, list | tuple)
        or not validator
        or not all(isinstance(a, str) and a and "\0" not in a for a in validator)
    ):
        raise InvalidArgumentError(
            "the validator must be a non-empty argv (a list of strings), never a shell string",
            hint="phasegate module add NAME --from DIR --install-to DIR -- python -m pytest -q",
        )
    if (
        not isinstance(timeout_s, int)
        or isinstance(timeout_s, bool)
        or not (1 <= timeout_s <= MAX_TIMEOUT_S)
    ):
        raise InvalidArgumentError(f"the timeout must be 1 to {MAX_TIMEOUT_S} seconds")
    return list(validator), timeout_s


class Registry:
    def __init__(self, kit: Lifecycle, installs: Installs) -> None:
        self.kit = kit
        self.installs = installs

    async def register(
        self,
        caller: Caller,
        module: str,
        source: Path,
        install_to: Path,
        validator: list[str],
        timeout_s: int = 600,
    ) -> dict[str, Any]:
        require_admin(caller, "register a module")
        check_module_name(module)
        argv, timeout_s = _check_validator(validator, timeout_s)
        source, install = Path(os.path.abspath(source)), Path(os.path.abspath(install_to))
        if os.path.lexists(install):
            raise InvalidArgumentError(
                f"{install} exists; phasegate creates the install path itself (a symlink to"
                " the active version)",
                hint="choose an install path that does not exist yet, or move that one away",
            )
        if install == source or source in install.parents:
            raise InvalidArgumentError("the install path cannot be inside the source directory")
        if await self.kit.work.store.peek(
            lambda tx: tx.one("SELECT 1 FROM modules WHERE module = ?", (module,))
        ):
            raise ConflictError(f"module {module!r} is registered already")
        files = await asyncio.to_thread(read_tree, source)
        manifest = await asyncio.to_thread(store_tree, self.kit.blobs, files)
        head = await self.kit.work.store.peek(
            lambda tx: tx.one("SELECT seq, leaf_hash FROM ledger ORDER BY seq DESC LIMIT 1")
        )
        predicate = {
            "module": module,
            "version": 1,
            "source": "import",
            "source_dir": str(source),
            "source_version": None,
            "draft": None,
            "diff_sha256": None,
            "validation_report_sha256": None,
            "approval": None,
            "policy_set_hash": None,
            "actor": caller.actor,
            "ledger_anchor": None if head is None else {"seq": head[0], "leaf_hash": head[1]},
        }
        envelope = sign_statement(
            statement(module, 1, manifest.bundle_sha256, predicate), self.kit.signer
        )
        staged = self.kit.blobs.stage(envelope)

        def run(tx: Tx, ops: Ops) -> None:
            try:
                if tx.one("SELECT 1 FROM modules WHERE module = ?", (module,)):
                    raise ConflictError(f"module {module!r} is registered already")
                self.kit.blobs.publish(staged)
            except BaseException:
                self.kit.blobs.discard(staged)
                raise
            data = {
                "install_path": str(install),
                "validator": argv,
                "timeout_s": timeout_s,
                "version": 1,
                "bundle_sha256": manifest.bundle_sha256,
                "attestation_sha256": staged.sha256,
                "files": len(manifest),
                "bytes": manifest.total_bytes,
                "source_dir": str(source),
            }
            ops.emit(tx, Record("module.registered", {"module": module}, data))

        try:
            await self.kit.work.transact(caller, run)
        finally:
            self.kit.blobs.discard(staged)
        installed = await self.installs.install(caller, module, 1)
        return {
            "module": module,
            "version": 1,
            "bundle_sha256": manifest.bundle_sha256,
            "attestation_sha256": staged.sha256,
            "files": len(manifest),
            "bytes": manifest.total_bytes,
            "install_path": str(install),
            "validator": argv,
            "timeout_s": timeout_s,
            "tree": installed["tree"],
        }

    async def list(self) -> list[dict[str, Any]]:
        """Every module with its pointer and where its install path points now."""

        def read(tx: Tx) -> list[tuple[Any, Any]]:
            out = []
            for mod in all_modules(tx):
                versions = {v.version: v for v in all_versions(tx, mod.module)}
                out.append((mod, versions.get(mod.active_version or 0)))
            return out

        rows = await self.kit.work.store.peek(read)
        return [{**mod.as_dict(), **self.installs.status(mod, rec)} for mod, rec in rows]

    async def versions(self, module: str) -> dict[str, Any]:
        """The module's versions, oldest first, and its active pointer."""
        check_module_name(module)

        def read(tx: Tx) -> tuple[Any, Any]:
            return module_row(tx, module), all_versions(tx, module)

        mod, versions = await self.kit.work.store.peek(read)
        active = {v.version: v for v in versions}.get(mod.active_version or 0)
        return {
            "module": module,
            "active": mod.active_version,
            "newest": mod.newest_version,
            "install_path": mod.install_path,
            **self.installs.status(mod, active),
            "versions": [
                {**v.as_dict(), "active": v.version == mod.active_version} for v in versions
            ],
        }
