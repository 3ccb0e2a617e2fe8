"""The governed modules' facade: every verb of the change lifecycle, by name.

`Enforcer.modules` is one of these; the MCP tools, the CLI and the demo call it. Each verb
delegates to the service of its noun (registry, drafts, validation, promotions, installs),
all sharing one `Lifecycle` (unit of work, blobs, trees, leases, policy hook, key).

    m = enforcer.modules
    d = await m.draft_create(me, "T1", "skills")
    await m.draft_write(me, d["draft"], "SKILL.md", "# Review\\n")
    await m.draft_validate(me, d["draft"])
    v = await m.draft_promote(me, d["draft"])          # in PR
    await m.module_install(me, "skills", v["version"], task="T1")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AttestationInvalidError
from ..ledger.keys import Signer
from ..model import Caller
from ..names import check_module_name
from ..paths import StatePaths
from ..process.leases import Leases
from ..process.work import Work
from .attestation import open_statement
from .blobs import BlobStore
from .drafts import Drafts
from .guard import verify_version
from .installs import Installs
from .lifecycle import Lifecycle
from .policy_hook import DefaultPolicy, PolicyHook
from .promotion import Promotions
from .records import version_row
from .registry import Registry
from .trees import Trees
from .validation import Validation

__all__ = ["Modules"]


class Modules:
    def __init__(
        self,
        work: Work,
        paths: StatePaths,
        leases: Leases,
        signer: Signer,
        policy: PolicyHook | None = None,
    ) -> None:
        blobs = BlobStore(paths)
        self.kit = Lifecycle(
            work, blobs, Trees(paths, blobs), leases, policy or DefaultPolicy(), signer
        )
        self.installs = Installs(self.kit, signer.verifier)
        self.registry = Registry(self.kit, self.installs)
        self.drafts = Drafts(self.kit)
        self.validation = Validation(self.kit)
        self.promotions = Promotions(self.kit)

    # supervisors
    async def module_add(
        self,
        caller: Caller,
        module: str,
        source: Path,
        install_to: Path,
        validator: list[str],
        timeout_s: int = 600,
    ) -> dict[str, Any]:
        return await self.registry.register(
            caller, module, source, install_to, validator, timeout_s
        )

    async def reconcile(self, caller: Caller) -> list[dict[str, Any]]:
        return await self.installs.reconcile(caller)

    # reading
    async def module_list(self) -> list[dict[str, Any]]:
        return await self.registry.list()

    async def module_versions(self, module: str) -> dict[str, Any]:
        return await self.registry.versions(module)

    async def version_attestation(self, module: str, version: int) -> dict[str, Any]:
        """What version `version`'s attestation says, checked as the install guard checks it
        (signature, subject, manifest): ``verified`` and the predicate, or the fault."""
        check_module_name(module)
        record = await self.kit.work.store.peek(lambda tx: version_row(tx, module, version))
        verifier = self.installs.verifier
        try:
            verify_version(record, self.kit.blobs, verifier)
            stmt = open_statement(self.kit.blobs.read(record.attestation_sha256), verifier)
        except AttestationInvalidError as e:
            return {"verified": False, "fault": e.details.get("fault"), "message": e.message}
        return {
            "verified": True,
            "attestation_sha256": record.attestation_sha256,
            "key_id": verifier.key_id.hex(),
            "subject": stmt["subject"],
            "predicate": stmt["predicate"],
        }

    async def draft_task(self, draft: str) -> str:
        return await self.drafts.task_of(draft)

    async def draft_diff(self, draft: str) -> dict[str, Any]:
        return await self.drafts.diff(draft)

    async def draft_show(self, draft: str, path: str | None = None) -> dict[str, Any]:
        return await self.drafts.show(draft, path)

    async def policy_check(self, draft: str, caller: Caller | None = None) -> dict[str, Any]:
        return await self.promotions.policy_check(draft, caller)

    # drafts
    async def draft_create(
        self, caller: Caller, task: str, module: str, from_version: int | None = None
    ) -> dict[str, Any]:
        return await self.drafts.create(caller, task, module, from_version)

    async def draft_write(
        self, caller: Caller, draft: str, path: str, content: str
    ) -> dict[str, Any]:
        return await self.drafts.write(caller, draft, path, content)

    async def draft_delete_file(self, caller: Caller, draft: str, path: str) -> dict[str, Any]:
        return await self.drafts.delete_file(caller, draft, path)

    async def draft_apply_patch(self, caller: Caller, draft: str, patch: str) -> dict[str, Any]:
        return await self.drafts.apply_patch(caller, draft, patch)

    async def draft_rebase(self, caller: Caller, draft: str) -> dict[str, Any]:
        return await self.drafts.rebase(caller, draft)

    async def draft_discard(self, caller: Caller, draft: str, reason: str) -> dict[str, Any]:
        return await self.drafts.discard(caller, draft, reason)

    async def draft_validate(self, caller: Caller, draft: str) -> dict[str, Any]:
        return await self.validation.validate(caller, draft)

    async def draft_promote(self, caller: Caller, draft: str) -> dict[str, Any]:
        return await self.promotions.promote(caller, draft)

    # the pointer
    async def module_install(
        self, caller: Caller, module: str, version: int, task: str | None = None
    ) -> dict[str, Any]:
        return await self.installs.install(caller, module, version, task)

    async def module_rollback(
        self,
        caller: Caller,
        module: str,
        reason: str,
        to_version: int | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        return await self.installs.rollback(caller, module, reason, to_version, task)
