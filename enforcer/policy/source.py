"""Where the policy in force comes from: ``phasegate.toml``, re-read on every decision.

The server keeps serving while a supervisor edits the file. Each decision reads the file's
bytes (a small file: a read and a sha256, about ten microseconds) and compares their digest
with the file the policy in force came from. A changed file is validated with the same loader
as at start (unknown keys are errors naming the key); a valid one becomes the policy in force,
an invalid one leaves the previous policy in force and is reported (logged once, and recorded
once per distinct content). A file that vanished or cannot be read counts as invalid: the
policy in force stays. So does a file that was read with content before and is empty now: that
is what a reader sees in the middle of a truncating write (``>`` in a shell), not a wish for the
defaults (``[policy]`` alone says that).

The ledger learns of both through `notes`: in the transaction of a decision, it compares the
policy in force with the last one the ledger recorded (the ``policy_state`` projection) and
returns the entries still missing — ``policy.changed`` with the new hash, the policy itself and
the previous hash, or ``policy.reload_failed`` with the file's digest and the keys at fault.
The decision's caller appends them with its own entries, so a decision never names a
``policy_set_hash`` the ledger has not seen; if that transaction rolls back, the next decision
finds them missing still and returns them again.

    source = PolicySource(config.policy, Path("phasegate.toml"))
    ps, failure = source.current()
    records = source.notes(tx, ps, failure)
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import parse_config
from ..errors import InvalidArgumentError
from ..ledger.ops import Record
from ..policy_config import PolicyConfig, canonical_policy
from ..store import Tx
from .rules import PolicySet

__all__ = ["Failure", "PolicySource"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Failure:
    """A file the policy refused: its digest (or what made it unreadable), why, the keys."""

    file_sha256: str
    message: str
    keys: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"file_sha256": self.file_sha256, "error": self.message, "keys": list(self.keys)}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_EMPTY = _digest(b"")


class PolicySource:
    """The policy in force and the file it is re-read from (None: no file, nothing to watch)."""

    def __init__(self, config: PolicyConfig, path: Path | None = None) -> None:
        self.path = path
        self._in_force = PolicySet.from_config(config)
        # None: the first decision parses the file again, so a change made between loading
        # the configuration and building this source is not mistaken for what is in force.
        self._file_sha256: str | None = None
        self._failure: Failure | None = None
        self._lock = threading.Lock()

    @property
    def in_force(self) -> PolicySet:
        return self._in_force

    def current(self) -> tuple[PolicySet, Failure | None]:
        """The policy in force after looking at the file, and the file's fault if it has one."""
        if self.path is None:
            return self._in_force, None
        try:
            data = self.path.read_bytes()
        except OSError as e:
            return self._refuse(_digest(f"unreadable: {e.strerror}".encode()), str(e), ())
        digest = _digest(data)
        with self._lock:
            if digest == self._file_sha256:
                return self._in_force, None
            if self._failure is not None and self._failure.file_sha256 == digest:
                return self._in_force, self._failure
            emptied = not data.strip() and self._file_sha256 not in (None, _EMPTY)
        if emptied:
            message = f"{self.path}: empty (a write in progress?); write [policy] for the defaults"
            return self._refuse(digest, message, ())
        try:
            config = parse_config(data.decode("utf-8"), self.path)
        except UnicodeDecodeError as e:
            return self._refuse(digest, f"{self.path}: not UTF-8: {e}", ())
        except InvalidArgumentError as e:
            return self._refuse(digest, e.message, tuple(e.details.get("keys", ())))
        fresh = PolicySet.from_config(config.policy)
        with self._lock:
            before = self._in_force.policy_set_hash
            self._in_force, self._file_sha256, self._failure = fresh, digest, None
        if fresh.policy_set_hash != before:
            logger.info("%s: the policy in force is now %s", self.path, fresh.policy_set_hash[:12])
        return fresh, None

    def _refuse(
        self, digest: str, message: str, keys: tuple[str, ...]
    ) -> tuple[PolicySet, Failure]:
        failure = Failure(digest, message, keys)
        with self._lock:
            if self._failure != failure:
                logger.warning(
                    "policy file refused, the previous policy (%s) stays in force: %s",
                    self._in_force.policy_set_hash[:12],
                    message,
                )
            self._failure = failure
            return self._in_force, failure

    def notes(self, tx: Tx, ps: PolicySet, failure: Failure | None) -> tuple[Record, ...]:
        """The policy entries the ledger still lacks for a decision under `ps` (see above)."""
        recorded: dict[str, str] = {
            str(n): str(h) for n, h in tx.all("SELECT name, sha256 FROM policy_state")
        }
        where = None if self.path is None else str(self.path)
        out: list[Record] = []
        if recorded.get("in_force") != ps.policy_set_hash:
            data = {
                "policy_set_hash": ps.policy_set_hash,
                "previous": recorded.get("in_force"),
                "path": where,
                "policy": canonical_policy(ps.config),
            }
            out.append(Record("policy.changed", {"policy": "phasegate.toml"}, data))
        if failure is not None and recorded.get("reload_failed") != failure.file_sha256:
            data = {"policy_set_hash": ps.policy_set_hash, "path": where, **failure.as_dict()}
            out.append(Record("policy.reload_failed", {"policy": "phasegate.toml"}, data))
        return tuple(out)
