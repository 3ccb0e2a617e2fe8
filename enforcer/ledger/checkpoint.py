"""Signed ledger checkpoints in the C2SP tlog-checkpoint format, kept outside the database.

A checkpoint is a signed note (C2SP signed-note): the body is three lines — origin, tree size in
decimal, base64 of the RFC 6962 root — then a blank line and one signature line per signer:
``— <name> <base64(key id || Ed25519 signature over the body)>``. Files live in
``state/checkpoints/<size>.txt``; Ed25519 is deterministic, so two processes checkpointing the
same size write identical bytes.

    cp = Checkpoint(origin="phasegate/abcd", size=3, root=b"...32 bytes...")
    text = cp.sign(signer)
    Checkpoint.parse(text, verifier)  # -> cp, or raises CheckpointError
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .keys import Signer, Verifier

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "latest",
    "list_checkpoints",
    "newest_size",
    "path_of",
    "read",
    "write",
]

_EM_DASH = "\u2014"
_FILE = re.compile(r"([0-9]{12})\.txt")  # fullmatch: \d and $ would admit "٥" and a newline
_SIZE = re.compile(r"0|[1-9][0-9]*")  # ASCII decimal, no leading zeros (str.isdigit takes "٣")


class CheckpointError(ValueError):
    """A checkpoint is malformed or its signature does not verify; `kind` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, signer: Signer) -> str:
        """The signed note text."""
        body = self.body()
        sig = signer.sign(body.encode())
        blob = base64.b64encode(signer.verifier.key_id + sig).decode()
        return f"{body}\n{_EM_DASH} {signer.name} {blob}\n"

    @classmethod
    def parse(cls, text: str, verifier: Verifier) -> Checkpoint:
        """Parse a signed note and check the signature of `verifier` on it."""
        body, sep, sigs = text.partition("\n\n")
        if not sep:
            raise CheckpointError("format", "no blank line between body and signatures")
        body += "\n"
        lines = body.split("\n")
        if len(lines) < 4:
            raise CheckpointError("format", "body needs origin, size and root lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError("format", f"bad tree size {size_text!r}")
        try:
            root = base64.b64decode(root_text, validate=True)
        except ValueError as e:  # binascii.Error, or a character that is not ASCII
            raise CheckpointError("format", f"bad root hash: {e}") from e
        if len(root) != 32:
            raise CheckpointError("format", "root hash is not 32 bytes")
        for line in sigs.splitlines():
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != _EM_DASH or parts[1] != verifier.name:
                continue
            try:
                blob = base64.b64decode(parts[2], validate=True)
            except ValueError:  # binascii.Error, or a character that is not ASCII
                continue
            if blob[:4] == verifier.key_id and verifier.verify(blob[4:], body.encode()):
                return cls(origin=origin, size=int(size_text), root=root)
        raise CheckpointError("signature", "no valid signature by the ledger key")


def path_of(directory: Path, size: int) -> Path:
    """Where the checkpoint of `size` is kept."""
    return directory / f"{size:012d}.txt"


def write(directory: Path, checkpoint: Checkpoint, signer: Signer) -> Path:
    """Write the signed checkpoint atomically (temp file, fsync, rename); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = path_of(directory, checkpoint.size)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".cp-")
    try:
        os.write(fd, checkpoint.sign(signer).encode())
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(size, path) of every checkpoint file, ascending by size."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        m = _FILE.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), entry))
    return sorted(found)


def read(path: Path, verifier: Verifier) -> Checkpoint:
    """Read and check one checkpoint file: CheckpointError when it is not a valid note signed by
    `verifier` (bytes that are not UTF-8 included), OSError when it cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError("format", f"not UTF-8 text: {e}") from e
    return Checkpoint.parse(text, verifier)


def newest_size(directory: Path) -> int | None:
    """The size of the newest checkpoint file, or None when there is none.

    Names are zero-padded to one width, so the greatest name is the newest: one `listdir` and
    a `max`, about ten times cheaper than `list_checkpoints` (which makes a Path of each)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return None
    width = len("000000000000.txt")
    candidates = [n for n in names if len(n) == width]
    while candidates:
        best = max(candidates)
        m = _FILE.fullmatch(best)
        if m:
            return int(m.group(1))
        candidates.remove(best)  # a stray file of the same width: look again
    return None


def latest(directory: Path, verifier: Verifier) -> Checkpoint | None:
    """The newest checkpoint, parsed and signature-checked, or None when there is none."""
    found = list_checkpoints(directory)
    if not found:
        return None
    return read(found[-1][1], verifier)
