"""Drafts: editable copies of a module version, never installable (DESIGN.md, Governed modules).

A draft is a manifest over content-addressed blobs, made from a version (its base, kept) for a
task: a copy-on-write workspace no other draft or version sees. Each edit — write, delete,
strict patch, rebase — is one transaction that checks the caller's lease on the draft's task
and asks the policy hook about the paths it touches, stores the new bytes and the new manifest
as blobs and ledgers ``draft.edited`` with the new ``bundle_sha256``; a refused edit (bad path,
patch conflict, policy) leaves the draft and the blob store as they were. Any edit after a
validation returns the draft to EDITING. Drafts are never deleted: a discarded one is kept.

    d = await drafts.create(me, "T1", "skills")
    await drafts.write(me, d["draft"], "SKILL.md", "# Review\\n")
    (await drafts.diff(d["draft"]))["diff"]
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ..errors import ConflictError, InvalidArgumentError, NotFoundError
from ..ledger.ops import Ops, Record
from ..model import Caller, check_task_id
from ..names import check_draft_id, check_module_name, check_module_path
from ..process.work import MAX_REASON, task_row, text_arg
from ..store import Tx
from .blobs import StagedBlob, sha256_hex
from .diffs import changed_paths, manifest_diff, text_of
from .lifecycle import Lifecycle
from .manifest import FileEntry, Manifest
from .patches import apply_patch
from .policy_hook import PolicyRequest
from .rebase import rebase_manifest
from .records import OPEN_STATES, DraftRow, DraftState, draft_row, module_row, version_row

__all__ = ["MAX_FILE_BYTES", "MAX_PATCH_BYTES", "Drafts"]

MAX_FILE_BYTES = 2 * 1024 * 1024  # one draft_write (the MCP tools' bound as well)
MAX_PATCH_BYTES = 2 * 1024 * 1024
_LISTED = 50  # paths named in one ledger entry (the new manifest names them all)

# A change: (draft row, its manifest, tx) -> (new manifest, new blob bytes, paths touched, data)
Change = Callable[[DraftRow, Manifest, Tx], tuple[Manifest, list[bytes], list[str], dict[str, Any]]]


def _view(row: DraftRow, **extra: Any) -> dict[str, Any]:
    return {
        "draft": row.draft,
        "module": row.module,
        "task": row.task,
        "base_version": row.base_version,
        "state": row.state.value,
        "bundle_sha256": row.bundle_sha256,
        "files": row.files,
        **extra,
    }


def require_open(row: DraftRow) -> None:
    if row.state not in OPEN_STATES:
        raise ConflictError(
            f"draft {row.draft} is {row.state.value}: it takes no more changes",
            hint="draft_create makes a new draft from the newest version",
            details={"draft": row.draft, "state": row.state.value},
        )


class Drafts:
    def __init__(self, kit: Lifecycle) -> None:
        self.kit = kit

    async def task_of(self, draft: str) -> str:
        """The task a draft belongs to (the router checks that task's phase and lease)."""
        row = await self.kit.work.store.peek(lambda tx: draft_row(tx, draft))
        return row.task

    async def create(
        self, caller: Caller, task: str, module: str, from_version: int | None = None
    ) -> dict[str, Any]:
        check_task_id(task)
        check_module_name(module)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            task_row(tx, task)
            mod = module_row(tx, module)
            version = from_version or mod.active_version or mod.newest_version
            base = version_row(tx, module, version)
            self.kit.manifest(base.bundle_sha256)  # the base must be whole to start from
            self.kit.hold_task(tx, ops, task)
            count = tx.one("SELECT count(*) FROM drafts WHERE module = ?", (module,))
            draft = f"{module}-d{int(count[0]) + 1 if count else 1}"
            subject = {"module": module, "draft": draft, "task": task}
            data = {"base_version": version, "bundle_sha256": base.bundle_sha256}
            ops.emit(tx, Record("draft.created", subject, {**data, "files": base.files}))
            return _view(draft_row(tx, draft))

        return await self.kit.work.transact(caller, run)

    async def write(self, caller: Caller, draft: str, path: str, content: str) -> dict[str, Any]:
        check_module_path(path)
        if not isinstance(content, str):
            raise InvalidArgumentError("content must be a string", details={"argument": "content"})
        data = content.encode("utf-8", "surrogatepass")
        if len(data) > MAX_FILE_BYTES:
            raise InvalidArgumentError(
                f"content is {len(data)} bytes; the limit is {MAX_FILE_BYTES}",
                details={"argument": "content"},
            )

        def change(row: DraftRow, current: Manifest, tx: Tx) -> Any:
            old = current.get(path)
            entry = FileEntry(sha256_hex(data), old.mode if old else 0o644, len(data))
            return current.with_file(path, entry), [data], [path], {"op": "write"}

        return await self._edit(caller, draft, change)

    async def delete_file(self, caller: Caller, draft: str, path: str) -> dict[str, Any]:
        check_module_path(path)

        def change(row: DraftRow, current: Manifest, tx: Tx) -> Any:
            if current.get(path) is None:
                raise NotFoundError(
                    f"draft {row.draft} has no file {path!r}",
                    hint="draft_show lists what the draft changed; paths are relative",
                    details={"path": path},
                )
            return current.without(path), [], [path], {"op": "delete"}

        return await self._edit(caller, draft, change)

    async def apply_patch(self, caller: Caller, draft: str, patch: str) -> dict[str, Any]:
        if (
            not isinstance(patch, str)
            or len(patch.encode("utf-8", "surrogatepass")) > MAX_PATCH_BYTES
        ):
            raise InvalidArgumentError(
                f"patch must be a string of at most {MAX_PATCH_BYTES} bytes",
                details={"argument": "patch"},
            )

        def change(row: DraftRow, current: Manifest, tx: Tx) -> Any:
            def now(p: str) -> bytes | None:
                entry = current.get(p)
                return None if entry is None else self.kit.content(entry.sha256)

            changes = apply_patch(patch, now)
            new, created = current, []
            for p, c in changes.items():
                if c.data is None:
                    new = new.without(p)
                    continue
                old = current.get(p)
                mode = c.mode or (old.mode if old else 0o644)
                new = new.with_file(p, FileEntry(sha256_hex(c.data), mode, len(c.data)))
                created.append(c.data)
            return new, created, sorted(changes), {"op": "patch"}

        return await self._edit(caller, draft, change)

    async def rebase(self, caller: Caller, draft: str) -> dict[str, Any]:
        def change(row: DraftRow, current: Manifest, tx: Tx) -> Any:
            newest = module_row(tx, row.module).newest_version
            if newest == row.base_version:
                return current, [], [], {"op": "rebase"}
            base = self.kit.manifest(version_row(tx, row.module, row.base_version).bundle_sha256)
            top = self.kit.manifest(version_row(tx, row.module, newest).bundle_sha256)
            merged, created = rebase_manifest(base, current, top, self.kit.content)
            paths = [p for p, _ in changed_paths(current, merged)]
            data = {"op": "rebase", "base_version": newest, "from_base_version": row.base_version}
            return merged, list(created.values()), paths, data

        return await self._edit(caller, draft, change)

    async def _edit(self, caller: Caller, draft: str, change: Change) -> dict[str, Any]:
        """Run one edit in one transaction; an edit that changes nothing records nothing."""
        check_draft_id(draft)
        staged: list[StagedBlob] = []

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            try:
                row = draft_row(tx, draft)
                require_open(row)
                self.kit.hold_task(tx, ops, row.task)
                current = self.kit.manifest(row.bundle_sha256)
                new, created, paths, data = change(row, current, tx)
                moved = "base_version" in data
                if new == current and not moved:
                    return _view(row, changed=False, paths=paths)
                request = PolicyRequest(
                    "edit",
                    row.module,
                    row.draft,
                    row.task,
                    ops.caller.actor,
                    tuple(paths),
                    base_version=row.base_version,
                    role=ops.caller.role,
                )
                refused = Record(
                    "draft.edit_refused",
                    {"module": row.module, "draft": row.draft, "task": row.task},
                    {"op": data["op"], "paths": paths[:_LISTED], "paths_count": len(paths)},
                )
                decision = self.kit.obey(tx, ops, request, denied=refused)
                staged.extend(self.kit.blobs.stage(b) for b in [*created, new.canonical()])
                for blob in staged:
                    self.kit.blobs.publish(blob)
            except BaseException:
                for blob in staged:
                    self.kit.blobs.discard(blob)
                raise
            subject = {"module": row.module, "draft": row.draft, "task": row.task}
            record = {
                **data,
                "paths": paths[:_LISTED],
                "paths_count": len(paths),
                "bundle_sha256": new.bundle_sha256,
                "prior_bundle_sha256": row.bundle_sha256,
                "files": len(new),
                **decision.ledger_fields(),
            }
            ops.emit(tx, Record("draft.edited", subject, record))
            return _view(draft_row(tx, draft), changed=True, paths=paths)

        try:
            return await self.kit.work.transact(caller, run)
        except asyncio.CancelledError:
            raise  # a queued unit still runs later and cleans up itself
        except BaseException:
            for blob in staged:
                self.kit.blobs.discard(blob)
            raise

    async def discard(self, caller: Caller, draft: str, reason: str) -> dict[str, Any]:
        check_draft_id(draft)
        reason = text_arg(reason, "reason", MAX_REASON)

        def run(tx: Tx, ops: Ops) -> dict[str, Any]:
            row = draft_row(tx, draft)
            if row.state is DraftState.DISCARDED:
                return _view(row)
            require_open(row)
            self.kit.hold_task(tx, ops, row.task)
            subject = {"module": row.module, "draft": row.draft, "task": row.task}
            data = {"reason": reason, "bundle_sha256": row.bundle_sha256}
            ops.emit(tx, Record("draft.discarded", subject, data))
            return _view(draft_row(tx, draft))

        return await self.kit.work.transact(caller, run)

    async def diff(self, draft: str) -> dict[str, Any]:
        """The unified diff of the draft against its base, with stats and diff_sha256."""
        row, base = await self._with_base(draft)
        current = self.kit.manifest(row.bundle_sha256)
        found = await asyncio.to_thread(manifest_diff, base, current, self.kit.content)
        return {**_view(row), **found.as_dict()}  # files: the changed ones, as DESIGN says

    async def show(self, draft: str, path: str | None = None) -> dict[str, Any]:
        """State, base, validation report, changed paths; with `path`, that file's content."""
        row, base = await self._with_base(draft)
        current = self.kit.manifest(row.bundle_sha256)
        report = None
        if row.report_sha256 is not None:
            report = json.loads(self.kit.blobs.read(row.report_sha256))
        out = _view(
            row,
            validated=row.validated,
            validated_bundle=row.validated_bundle,
            report_sha256=row.report_sha256,
            report=report,
            approval=await self.kit.work.store.peek(
                lambda tx: self.kit.policy.approval_of(row.draft, tx)
            ),
            version=row.version,
            changes=[{"path": p, "status": s} for p, s in changed_paths(base, current)][:200],
        )
        if path is not None:
            entry = current.get(check_module_path(path))
            if entry is None:
                raise NotFoundError(f"draft {draft} has no file {path!r}", details={"path": path})
            text = text_of(self.kit.content(entry.sha256))
            out["file"] = {
                "path": path,
                "sha256": entry.sha256,
                "mode": entry.mode,
                "size": entry.size,
                "content": text,  # None for a binary file
            }
        return out

    async def _with_base(self, draft: str) -> tuple[DraftRow, Manifest]:
        def read(tx: Tx) -> tuple[DraftRow, str]:
            row = draft_row(tx, draft)
            return row, version_row(tx, row.module, row.base_version).bundle_sha256

        row, bundle = await self.kit.work.store.peek(read)
        return row, self.kit.manifest(bundle)
