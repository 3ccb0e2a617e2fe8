"""`draft_rebase`: replay a draft's changes onto the module's newest version.

Path by path, the draft's change from its base is carried onto the newest version: a path the
newest version left as the base had it takes the draft's entry; a path both changed the same
way needs nothing; a text file both changed differently gets the draft's own diff of it applied
strictly (`patches.apply_patch`: its context must still match); anything else — a delete
against a change, two different additions, a binary file changed on both sides — is a
conflict. All paths are decided before anything changes; one conflict refuses the whole
rebase (CONFLICT, naming every conflicting path) and the draft stays as it was.

    merged, new_blobs = rebase_manifest(base, draft, newest, blobs.read)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..errors import ConflictError, InvalidArgumentError
from .diffs import changed_paths, file_diff
from .manifest import FileEntry, Manifest
from .patches import apply_patch

__all__ = ["rebase_manifest"]


def rebase_manifest(
    base: Manifest, draft: Manifest, newest: Manifest, read: Callable[[str], bytes]
) -> tuple[Manifest, dict[str, bytes]]:
    """(the draft's changes on top of `newest`, the bytes of blobs the merge created)."""
    files = dict(newest.files)
    created: dict[str, bytes] = {}
    conflicts: list[str] = []
    for path, _status in changed_paths(base, draft):
        b, d, n = base.get(path), draft.get(path), newest.get(path)
        if n == b:
            if d is None:
                files.pop(path, None)
            else:
                files[path] = d
        elif n == d:
            continue
        elif b is not None and d is not None and n is not None:
            mode = d.mode if d.mode != b.mode else n.mode
            if d.sha256 == b.sha256:  # only the mode changed in the draft
                files[path] = FileEntry(n.sha256, mode, n.size)
                continue
            # The draft's own change of this file, without mode lines, replayed onto newest.
            plain_b, plain_d = (
                FileEntry(b.sha256, 0o644, b.size),
                FileEntry(d.sha256, 0o644, d.size),
            )
            text, _, _ = file_diff(path, plain_b, plain_d, read)
            upstream = read(n.sha256)

            def now(_path: str, data: bytes = upstream) -> bytes:
                return data

            try:
                change = apply_patch(text, now)[path]
            except (ConflictError, InvalidArgumentError):
                conflicts.append(path)
                continue
            assert change.data is not None
            sha = hashlib.sha256(change.data).hexdigest()
            created[sha] = change.data
            files[path] = FileEntry(sha, mode, len(change.data))
        else:
            conflicts.append(path)
    if conflicts:
        raise ConflictError(
            f"the draft's changes conflict with the newest version in {', '.join(conflicts[:10])}",
            hint="the draft is unchanged; draft_diff shows its changes — make a new draft from"
            " the newest version and carry them over by hand",
            details={"paths": conflicts[:100]},
        )
    merged = Manifest(files)
    for path in merged.files:
        problem = merged.collision(path)
        if problem is not None:
            raise ConflictError(f"the rebased draft would be inconsistent: {problem}")
    return merged, created
