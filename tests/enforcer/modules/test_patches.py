"""Strict patches and git-style diffs: a diff of two manifests applies back exactly; a hunk whose
context does not match, an ambiguous hunk, a rename, a binary or symlink patch, and any path
leaving the module are refused, and nothing is half-applied."""

from __future__ import annotations

import hashlib

import pytest
import unidiff

from enforcer.errors import ConflictError, InvalidArgumentError
from enforcer.modules.diffs import manifest_diff, split_lines
from enforcer.modules.manifest import FileEntry, Manifest
from enforcer.modules.patches import apply_patch

STORE: dict[str, bytes] = {}


def manifest(files: dict[str, bytes | tuple[bytes, int]]) -> Manifest:
    out = {}
    for path, value in files.items():
        data, mode = value if isinstance(value, tuple) else (value, 0o644)
        sha = hashlib.sha256(data).hexdigest()
        STORE[sha] = data
        out[path] = FileEntry(sha, mode, len(data))
    return Manifest(out)


def contents(m: Manifest) -> dict[str, bytes]:
    return {p: STORE[e.sha256] for p, e in m.files.items()}


def apply_to(m: Manifest, patch: str) -> dict[str, bytes | None]:
    changes = apply_patch(patch, lambda p: contents(m).get(p))
    return {p: c.data for p, c in changes.items()}


BEFORE = {
    "a.md": b"one\ntwo\nthree\nfour\nfive\nsix\nseven\n",
    "b.txt": b"no newline at the end",
    "gone.md": b"bye\n",
    "bin": b"\x00\x01\x02",
    "tools/x.sh": (b"#!/bin/sh\n", 0o644),
}
AFTER = {
    "a.md": b"one\n2\nthree\nfour\nfive\nsix\nseven\neight\n",
    "b.txt": b"no newline at the end, still",
    "new/file.md": b"# New\n",
    "bin": b"\x00\x01\x02",
    "tools/x.sh": (b"#!/bin/sh\n", 0o755),
}


def test_the_diff_of_two_manifests_applies_back_exactly_and_counts_its_lines() -> None:
    old, new = manifest(BEFORE), manifest(AFTER)
    diff = manifest_diff(old, new, STORE.__getitem__)
    assert (diff.files, diff.added, diff.removed) == (5, 4, 3)
    assert [c["status"] for c in diff.changes] == ["modified"] * 2 + ["deleted", "added", "mode"]
    assert "\\ No newline at end of file" in diff.text
    assert "old mode 100644\nnew mode 100755" in diff.text
    assert len(unidiff.PatchSet(diff.text)) == 5  # a real unified diff
    applied = apply_patch(diff.text, lambda p: contents(old).get(p))
    assert applied["gone.md"].data is None
    assert applied["tools/x.sh"].mode == 0o755
    for path, data in contents(new).items():
        if path in applied:
            assert applied[path].data == data, path
    assert diff.sha256 == hashlib.sha256(diff.text.encode()).hexdigest()


def test_a_hunk_finds_its_lines_when_the_file_moved_under_it() -> None:
    old = manifest({"a.md": b"one\ntwo\nthree\n"})
    diff = manifest_diff(old, manifest({"a.md": b"one\n2\nthree\n"}), STORE.__getitem__).text
    shifted = manifest({"a.md": b"zero\nhalf\none\ntwo\nthree\n"})
    assert apply_to(shifted, diff)["a.md"] == b"zero\nhalf\none\n2\nthree\n"


@pytest.mark.parametrize(
    "current",
    [
        b"one\nTWO\nthree\n",  # the removed line differs
        b"one\ntwo \nthree\n",  # whitespace counts: no fuzz
        b"ONE\ntwo\nthree\n",  # context differs
        b"x\n",  # nothing like it
    ],
)
def test_a_hunk_whose_context_does_not_match_is_a_conflict(current: bytes) -> None:
    diff = manifest_diff(
        manifest({"a.md": b"one\ntwo\nthree\n"}),
        manifest({"a.md": b"one\n2\nthree\n"}),
        STORE.__getitem__,
    ).text
    with pytest.raises(ConflictError) as caught:
        apply_to(manifest({"a.md": current}), diff)
    assert caught.value.details["path"] == "a.md"


def test_a_hunk_that_matches_two_other_places_is_a_conflict() -> None:
    patch = "--- a/a.md\n+++ b/a.md\n@@ -9,2 +9,2 @@\n x\n-y\n+z\n"
    with pytest.raises(ConflictError):
        apply_to(manifest({"a.md": b"x\ny\nx\ny\n"}), patch)


def test_one_conflicting_file_refuses_the_whole_patch() -> None:
    base = manifest({"a.md": b"a\n", "b.md": b"b\n"})
    patch = (
        "--- a/a.md\n+++ b/a.md\n@@ -1 +1 @@\n-a\n+A\n--- a/b.md\n+++ b/b.md\n@@ -1 +1 @@\n-X\n+B\n"
    )
    with pytest.raises(ConflictError) as caught:
        apply_to(base, patch)
    assert caught.value.details["path"] == "b.md"


def test_adding_a_file_that_exists_or_changing_one_that_does_not_is_a_conflict() -> None:
    add = "--- /dev/null\n+++ b/a.md\n@@ -0,0 +1 @@\n+a\n"
    with pytest.raises(ConflictError):
        apply_to(manifest({"a.md": b"a\n"}), add)
    change = "--- a/z.md\n+++ b/z.md\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(ConflictError):
        apply_to(manifest({"a.md": b"a\n"}), change)


def test_a_deletion_must_match_the_whole_file() -> None:
    delete = "--- a/a.md\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"
    with pytest.raises(ConflictError):
        apply_to(manifest({"a.md": b"a\nmore\n"}), delete)
    assert apply_to(manifest({"a.md": b"a\n"}), delete) == {"a.md": None}


@pytest.mark.parametrize(
    "patch",
    [
        "--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
        "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
        "--- /dev/null\n+++ b/x/../../y\n@@ -0,0 +1 @@\n+y\n",
        "--- a/a\\\\b\n+++ b/a\\\\b\n@@ -1 +1 @@\n-a\n+b\n",
    ],
    ids=["dotdot", "absolute", "dotdot-in-new-file", "backslash"],
)
def test_a_patch_path_leaving_the_module_is_an_invalid_argument(patch: str) -> None:
    with pytest.raises(InvalidArgumentError):
        apply_to(manifest({"a.md": b"a\n"}), patch)


@pytest.mark.parametrize(
    "patch",
    [
        "diff --git a/a.md b/c.md\nsimilarity index 100%\nrename from a.md\nrename to c.md\n",
        "diff --git a/bin b/bin\nBinary files a/bin and b/bin differ\n",
        "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n",
        "not a diff at all\n",
    ],
    ids=["rename", "binary", "symlink", "garbage"],
)
def test_renames_binaries_symlinks_and_garbage_are_invalid_arguments(patch: str) -> None:
    with pytest.raises(InvalidArgumentError):
        apply_to(manifest({"a.md": b"a\n", "bin": b"\x00"}), patch)


def test_lines_end_only_at_newlines() -> None:
    assert split_lines("a\rb\u2028c\nd") == ["a\rb\u2028c\n", "d"]
    assert split_lines("") == []
    assert split_lines("x\n") == ["x\n"]


def test_a_one_line_change_in_a_long_file_of_like_lines_counts_as_one_line() -> None:
    """difflib's autojunk would call every line of this file noise and replace it whole."""
    same = "the same line\n" * 400
    old, new = (
        manifest({"t.md": b"# A\n" + same.encode()}),
        manifest({"t.md": b"# B\n" + same.encode()}),
    )
    diff = manifest_diff(old, new, STORE.__getitem__)
    assert (diff.files, diff.added, diff.removed) == (1, 1, 1)
    assert apply_to(old, diff.text)["t.md"] == b"# B\n" + same.encode()
