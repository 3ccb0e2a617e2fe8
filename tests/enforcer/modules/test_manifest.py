"""Manifests, module paths and reading a supervisor's directory: canonical bytes and their
digest, strict parsing, paths that stay inside the module, and the files a module may not hold
(symlinks leaving it, special files, unreadable ones), each refused with a message naming it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enforcer.errors import InvalidArgumentError
from enforcer.ledger import canonical
from enforcer.modules.blobs import BlobStore
from enforcer.modules.manifest import FileEntry, Manifest, ManifestError
from enforcer.modules.tree_import import read_tree, store_tree
from enforcer.names import check_module_path
from enforcer.paths import StatePaths

REPO = Path(__file__).resolve().parents[3]
SHA = "ab" * 32


def test_the_bundle_digest_is_the_sha256_of_the_rfc8785_manifest() -> None:
    m = Manifest({"b.md": FileEntry(SHA, 0o644, 3), "a/x.sh": FileEntry(SHA, 0o755, 1)})
    raw = m.canonical()
    assert raw == canonical.encode(json.loads(raw))
    assert list(json.loads(raw)["files"]) == ["a/x.sh", "b.md"]
    assert m.bundle_sha256 == hashlib.sha256(raw).hexdigest()
    assert Manifest.from_bytes(raw) == m


@pytest.mark.parametrize(
    "body",
    [
        {"files": {"a": {"mode": 420, "sha256": SHA, "size": 1}}},  # no type
        {
            "files": {"../a": {"mode": 420, "sha256": SHA, "size": 1}},
            "type": "phasegate.manifest/v1",
        },
        {"files": {"a": {"mode": 511, "sha256": SHA, "size": 1}}, "type": "phasegate.manifest/v1"},
        {"files": {"a": {"mode": 420, "sha256": "x", "size": 1}}, "type": "phasegate.manifest/v1"},
        {"files": {"a": {"mode": 420, "sha256": SHA, "size": -1}}, "type": "phasegate.manifest/v1"},
        {
            "files": {
                "a": {"mode": 420, "sha256": SHA, "size": 1},
                "a/b": {"mode": 420, "sha256": SHA, "size": 1},
            },
            "type": "phasegate.manifest/v1",
        },
    ],
    ids=["no-type", "dotdot", "mode", "digest", "size", "file-and-directory"],
)
def test_a_malformed_manifest_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_bytes(canonical.encode(body))


def test_manifest_bytes_out_of_canonical_form_are_refused() -> None:
    raw = Manifest({"a": FileEntry(SHA, 0o644, 1)}).canonical()
    with pytest.raises(ManifestError):
        Manifest.from_bytes(json.dumps(json.loads(raw), indent=1).encode())


@pytest.mark.parametrize(
    "path",
    ["../x", "/etc/passwd", "a//b", "a/./b", "a/../b", "x/", "a\\b", "a\x00b", "", "a" * 1025],
)
def test_a_path_leaving_or_bending_the_module_is_an_invalid_argument(path: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_module_path(path)
    assert caught.value.details == {"argument": "path"}


def test_a_file_cannot_sit_where_a_directory_is_or_inside_a_file() -> None:
    m = Manifest({"a/b.md": FileEntry(SHA, 0o644, 1)})
    with pytest.raises(InvalidArgumentError):
        m.with_file("a", FileEntry(SHA, 0o644, 1))
    with pytest.raises(InvalidArgumentError):
        m.with_file("a/b.md/c", FileEntry(SHA, 0o644, 1))


def test_a_directory_is_read_whole_with_modes_and_symlinks_inside_it_followed(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    (src / "tools").mkdir(parents=True)
    (src / "a.md").write_text("# A\n")
    (src / "tools" / "run.sh").write_text("#!/bin/sh\n")
    (src / "tools" / "run.sh").chmod(0o750)
    (src / "alias.md").symlink_to("a.md")
    (src / "empty").mkdir()
    files = read_tree(src)
    assert [(p, m) for p, _, m in files] == [
        ("a.md", 0o644),
        ("alias.md", 0o644),
        ("tools/run.sh", 0o755),
    ]
    blobs = BlobStore(StatePaths(tmp_path / "state"))
    manifest = store_tree(blobs, files)
    assert blobs.read_checked(manifest.bundle_sha256) == manifest.canonical()
    assert all(blobs.read_checked(e.sha256) is not None for e in manifest.files.values())


@pytest.mark.parametrize("kind", ["outside", "directory", "dangling", "fifo"])
def test_symlinks_leaving_the_directory_and_special_files_are_refused_by_name(
    tmp_path: Path, kind: str
) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "ok.md").write_text("# ok\n")
    bad = src / "bad"
    if kind == "outside":
        (tmp_path / "secret").write_text("s")
        bad.symlink_to(tmp_path / "secret")
    elif kind == "directory":
        bad.symlink_to("sub")
    elif kind == "dangling":
        bad.symlink_to("nowhere")
    else:
        os.mkfifo(bad)
    with pytest.raises(InvalidArgumentError) as caught:
        read_tree(src)
    assert caught.value.details == {"path": "bad"}
    assert str(bad) in caught.value.message


def test_an_unreadable_file_is_refused_by_the_cli_with_one_line_and_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.md").write_text("# ok\n")
    (src / "secret.md").write_text("# secret\n")
    (src / "secret.md").chmod(0)
    command = [sys.executable, "-m", "server.cli", "module", "add", "m", "--state-dir"]
    command += [str(tmp_path / "st"), "--from", str(src), "--install-to", str(tmp_path / "live")]
    command += ["--", "true"]
    if os.geteuid() == 0:  # root reads every file: run without the capabilities that allow it
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *command]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "secret.md: unreadable file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "live").exists()
