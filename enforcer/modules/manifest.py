"""A manifest: what a module version (or a draft) holds, path by path.

Each path maps to the sha256 of the file's bytes, its mode (0o644, or 0o755 when executable —
the only two, as in git) and its size. The manifest's canonical bytes are the ledger's RFC 8785
encoding; their sha256 is the ``bundle_sha256`` that versions, validation reports and
attestations name. Paths are checked like every path an agent sends (`names.check_module_path`),
and no path may be both a file and a directory.

    m = Manifest({}).with_file("SKILL.md", FileEntry(sha, 0o644, 12))
    m.bundle_sha256          # sha256 of m.canonical()
    Manifest.from_bytes(m.canonical()) == m
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..errors import InvalidArgumentError
from ..ledger import canonical
from ..names import check_module_path

__all__ = ["MANIFEST_TYPE", "FileEntry", "Manifest", "ManifestError", "normal_mode"]

MANIFEST_TYPE = "phasegate.manifest/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MODES = (0o644, 0o755)


_PARSED: dict[str, Manifest] = {}  # by the sha256 of their bytes
_PARSED_MAX = 64


class ManifestError(ValueError):
    """Manifest bytes that are not a canonical, well-formed manifest."""


def normal_mode(st_mode: int) -> int:
    """0o755 if any execute bit is set, else 0o644."""
    return 0o755 if st_mode & 0o111 else 0o644


@dataclass(frozen=True, slots=True)
class FileEntry:
    sha256: str
    mode: int
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "sha256": self.sha256, "size": self.size}


class Manifest:
    """An immutable path → FileEntry map; `with_file` and `without` return new manifests."""

    def __init__(self, files: Mapping[str, FileEntry]) -> None:
        self.files: dict[str, FileEntry] = dict(sorted(files.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Manifest) and other.files == self.files

    def __hash__(self) -> int:
        return hash(self.bundle_sha256)

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def get(self, path: str) -> FileEntry | None:
        return self.files.get(path)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files.values())

    @cached_property
    def directories(self) -> frozenset[str]:
        """Every directory some file lies under."""
        dirs: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return frozenset(dirs)

    @cached_property
    def canonical_bytes(self) -> bytes:
        body = {"files": {p: e.as_json() for p, e in self.files.items()}, "type": MANIFEST_TYPE}
        return canonical.encode(body)

    def canonical(self) -> bytes:
        """The RFC 8785 bytes the bundle digest is taken over."""
        return self.canonical_bytes

    @cached_property
    def bundle_sha256(self) -> str:
        return hashlib.sha256(self.canonical_bytes).hexdigest()

    def collision(self, path: str) -> str | None:
        """Why `path` cannot be a file here (a parent is a file, or it is a directory)."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self.files:
                return f"{parent!r} is a file, so {path!r} cannot be inside it"
        if path in self.directories:
            return f"{path!r} is a directory"
        return None

    def with_file(self, path: str, entry: FileEntry) -> Manifest:
        """This manifest with `path` set to `entry` (InvalidArgumentError on a collision)."""
        check_module_path(path)
        problem = self.collision(path)
        if problem is not None:
            raise InvalidArgumentError(problem, details={"argument": "path"})
        files = dict(self.files)
        files[path] = entry
        return Manifest(files)

    def without(self, path: str) -> Manifest:
        files = dict(self.files)
        files.pop(path)
        return Manifest(files)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse manifest bytes strictly: canonical, typed, every path valid, no collisions.

        Raises ManifestError. Bytes parsed before are recognised by their digest and their
        manifest reused (manifests are immutable; the same bytes make the same manifest)."""
        digest = hashlib.sha256(raw).hexdigest()
        known = _PARSED.get(digest)
        if known is not None:
            return known
        manifest = cls._parse(raw)
        _PARSED[digest] = manifest
        if len(_PARSED) > _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        return manifest

    @classmethod
    def _parse(cls, raw: bytes) -> Manifest:
        try:
            body = canonical.decode(raw)
        except ValueError as e:
            raise ManifestError(f"not JSON: {e}") from e
        if (
            not isinstance(body, dict)
            or body.get("type") != MANIFEST_TYPE
            or set(body)
            != {
                "files",
                "type",
            }
        ):
            raise ManifestError("not a phasegate manifest")
        files = body["files"]
        if not isinstance(files, dict):
            raise ManifestError("files is not an object")
        entries: dict[str, FileEntry] = {}
        for path, item in files.items():
            try:
                check_module_path(path)
            except InvalidArgumentError as bad:
                raise ManifestError(bad.message) from None
            if (
                not isinstance(item, dict)
                or set(item) != {"mode", "sha256", "size"}
                or item["mode"] not in MODES
                or not isinstance(item["sha256"], str)
                or not _HEX64.match(item["sha256"])
                or not isinstance(item["size"], int)
                or isinstance(item["size"], bool)
                or item["size"] < 0
            ):
                raise ManifestError(f"entry {path!r} is malformed")
            entries[path] = FileEntry(item["sha256"], item["mode"], item["size"])
        manifest = cls(entries)
        for path in manifest.files:
            problem = manifest.collision(path)
            if problem is not None:
                raise ManifestError(problem)
        if manifest.canonical() != raw:
            raise ManifestError("not in canonical form")
        return manifest
