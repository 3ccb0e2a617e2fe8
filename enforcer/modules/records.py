"""Reading the modules' projection: a module, its versions, a draft, as immutable records.

Every reader takes a `Tx` so it serves inside a write transaction and over a read snapshot
alike, and raises NOT_FOUND with a hint when the thing named does not exist.

    module = module_row(tx, "skills")
    version = version_row(tx, "skills", 2)
    draft = draft_row(tx, "skills-d1")
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from ..errors import NotFoundError
from ..names import check_draft_id, check_module_name
from ..store import Tx

__all__ = [
    "DraftRow",
    "DraftState",
    "ModuleRow",
    "VersionRecord",
    "all_modules",
    "all_versions",
    "draft_row",
    "module_row",
    "version_row",
]


class DraftState(Enum):
    CREATED = "CREATED"  # just made from a version; no edit yet
    EDITING = "EDITING"  # changed since it was made or last validated
    VALIDATING = "VALIDATING"  # the validator is running over this bundle
    VALIDATED = "VALIDATED"  # the validator passed on exactly the current bundle
    FAILED = "FAILED"  # the validator failed on the current bundle
    PROMOTED = "PROMOTED"  # became a version; no more edits
    DISCARDED = "DISCARDED"  # given up; kept for audit, no more edits


OPEN_STATES = frozenset(
    {
        DraftState.CREATED,
        DraftState.EDITING,
        DraftState.VALIDATING,
        DraftState.VALIDATED,
        DraftState.FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class ModuleRow:
    module: str
    install_path: str
    validator: tuple[str, ...]
    timeout_s: int
    active_version: int | None
    newest_version: int
    registered_at: str
    registered_by: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["validator"] = list(self.validator)
        out["active"] = out.pop("active_version")
        out["newest"] = out.pop("newest_version")
        return out


@dataclass(frozen=True, slots=True)
class VersionRecord:
    module: str
    version: int
    bundle_sha256: str
    attestation_sha256: str
    report_sha256: str | None
    source_version: int | None
    draft: str | None
    diff_sha256: str | None
    files: int
    bytes: int
    created_at: str
    created_by: str
    seq: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DraftRow:
    draft: str
    module: str
    task: str
    base_version: int
    state: DraftState
    bundle_sha256: str
    files: int
    validated_bundle: str | None
    report_sha256: str | None
    validated_seq: int | None
    version: int | None
    created_at: str
    created_by: str

    @property
    def validated(self) -> bool:
        """VALIDATED, for exactly the bundle the draft holds now."""
        return self.state is DraftState.VALIDATED and self.validated_bundle == self.bundle_sha256

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.state.value
        return out


_MODULE_COLS = (
    "module, install_path, validator, timeout_s, active_version, newest_version,"
    " registered_at, registered_by"
)
_VERSION_COLS = (
    "module, version, bundle_sha256, attestation_sha256, report_sha256, source_version, draft,"
    " diff_sha256, files, bytes, created_at, created_by, seq"
)
_DRAFT_COLS = (
    "draft, module, task, base_version, state, bundle_sha256, files, validated_bundle,"
    " report_sha256, validated_seq, version, created_at, created_by"
)


def _module(row: tuple[Any, ...]) -> ModuleRow:
    return ModuleRow(
        row[0], row[1], tuple(json.loads(row[2])), int(row[3]), row[4], int(row[5]), row[6], row[7]
    )


def _version(row: tuple[Any, ...]) -> VersionRecord:
    return VersionRecord(*row)


def no_module(module: str) -> NotFoundError:
    return NotFoundError(
        f"no module {module!r}",
        hint="module_list shows the registered modules; a supervisor registers one"
        " (phasegate module add)",
        details={"module": module},
    )


def module_row(tx: Tx, module: str) -> ModuleRow:
    found = tx.one(
        f"SELECT {_MODULE_COLS} FROM modules WHERE module = ?", (check_module_name(module),)
    )
    if found is None:
        raise no_module(module)
    return _module(found)


def all_modules(tx: Tx) -> list[ModuleRow]:
    return [_module(r) for r in tx.all(f"SELECT {_MODULE_COLS} FROM modules ORDER BY module")]


def version_row(tx: Tx, module: str, version: int) -> VersionRecord:
    found = tx.one(
        f"SELECT {_VERSION_COLS} FROM module_versions WHERE module = ? AND version = ?",
        (module, version),
    )
    if found is None:
        raise NotFoundError(
            f"module {module!r} has no version {version}",
            hint="module_versions lists the versions; a draft is never installable, only the"
            " version draft_promote made of it",
            details={"module": module, "version": version},
        )
    return _version(found)


def all_versions(tx: Tx, module: str) -> list[VersionRecord]:
    rows = tx.all(
        f"SELECT {_VERSION_COLS} FROM module_versions WHERE module = ? ORDER BY version",
        (module,),
    )
    return [_version(r) for r in rows]


def draft_row(tx: Tx, draft: str) -> DraftRow:
    found = tx.one(f"SELECT {_DRAFT_COLS} FROM drafts WHERE draft = ?", (check_draft_id(draft),))
    if found is None:
        raise NotFoundError(
            f"no draft {draft!r}",
            hint="draft_create returns a draft id; module_versions shows promoted versions",
            details={"draft": draft},
        )
    row = list(found)
    row[4] = DraftState(row[4])
    return DraftRow(*row)
