"""The governed modules' part of the whole-state integrity check (`phasegate verify`, CI).

For every version: the guard's checks (envelope signature with the state's public key, the
statement's subject, the recorded envelope digest, the manifest) and every file blob's digest.
For every module: its install path points at the active version's tree, and every kept tree
under ``state/installed/`` holds exactly its version's files. It reads only. All faults are
collected, then raised together as one LedgerFaultError whose kind is the first one's
(``attestation``, ``manifest``, ``blob`` or ``installed``) and whose message names each.

    report = check_modules(paths, rows, Verifier.from_dir(paths.keys))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import AttestationInvalidError, LedgerFaultError
from ..ledger.keys import Verifier
from ..paths import StatePaths
from ..store import Tx
from .blobs import BlobStore
from .guard import verify_version
from .records import ModuleRow, VersionRecord, all_modules, all_versions
from .trees import Trees

__all__ = ["ModulesReport", "check_modules", "read_modules"]

# The guard's fault names, grouped into the kinds the integrity report uses.
_KIND = {"manifest": "manifest", "blob": "blob"}


@dataclass(frozen=True, slots=True)
class ModulesReport:
    modules: int
    versions: int
    blobs: int
    trees: int


def read_modules(tx: Tx) -> list[tuple[ModuleRow, list[VersionRecord]]]:
    return [(m, all_versions(tx, m.module)) for m in all_modules(tx)]


def check_modules(
    paths: StatePaths, rows: list[tuple[ModuleRow, list[VersionRecord]]], verifier: Verifier
) -> ModulesReport:
    blobs = BlobStore(paths)
    trees = Trees(paths, blobs)
    faults: list[tuple[str, int, str]] = []  # (kind, seq, message)
    blob_count = tree_count = 0
    for module, versions in rows:
        for record in versions:
            where = f"module {module.module} v{record.version}"
            tree = trees.version_dir(record.module, record.version, record.bundle_sha256)
            try:
                manifest = verify_version(record, blobs, verifier)
            except AttestationInvalidError as e:
                fault = str(e.details["fault"])
                kind = _KIND.get(fault, "attestation")
                faults.append((kind, record.seq, f"{e.message} ({fault})"))
                continue
            for path, entry in manifest.files.items():
                if blobs.read_checked(entry.sha256) is None:
                    gone = f"{where}: the blob of {path} is missing or altered"
                    faults.append(("blob", record.seq, gone))
                else:
                    blob_count += 1
            if tree.exists():
                tree_count += 1
                for problem in trees.problems(tree, manifest)[:20]:
                    changed = f"{where}: installed tree {tree.name}: {problem}"
                    faults.append(("installed", record.seq, changed))
        if module.active_version is not None:
            active = next(v for v in versions if v.version == module.active_version)
            expected = trees.version_dir(active.module, active.version, active.bundle_sha256)
            found = Trees.target(Path(module.install_path))
            # By the tree's name (module, version, bundle): a copied or moved state directory
            # still names the same version, wherever its absolute paths now lead.
            if found is None or (found.parent.name, found.name) != (module.module, expected.name):
                wrong = f"module {module.module}: {module.install_path} points at {found},"
                faults.append(("installed", active.seq, f"{wrong} not at v{active.version}"))
    if faults:
        kind, seq, _ = faults[0]
        raise LedgerFaultError(kind, "; ".join(m for _, _, m in faults), seq=seq)
    return ModulesReport(len(rows), sum(len(v) for _, v in rows), blob_count, tree_count)
