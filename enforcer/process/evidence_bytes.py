"""The bytes of new evidence, made durable by the commit that records them.

An evidence_put used to sync three times before it answered: the staged blob, the blob's
directory after its rename, and the database. Now the bytes of a blob that is not on disk yet
go into the recording transaction itself (table ``evidence_bytes``), so the one WAL sync that
makes the record durable (FULL: before the answer) makes its bytes durable too. Right after the
commit the blob file and the readable copy are written without a sync, so they are there at
once; `flush` syncs them in the background, in batches, and only then deletes the rows. So a
recorded digest always has its bytes on disk — in its row until its file is.

Rows whose files this process did not write (a server killed before its flush, a caller that
went away while its write was queued) are adopted: the next server to start rewrites every
row's blob and the readable copies that name it from the row, synced, before it serves; a
running server does the same for rows older than a minute. A refused write inserts nothing:
the insert is part of the transaction that refuses.

    bytes_ = EvidenceBytes(store, files, clock)
    inserted = bytes_.hold(tx, sha, data, ts)     # in the recording unit, after its checks
    bytes_.copy_out(owned, copies)                # after the commit
    await bytes_.flush(everything=True)           # at start; flush() at shutdown
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from ..clock import Clock, rfc3339
from ..store import Row, Store, Tx
from .evidence_files import EvidenceFiles

__all__ = ["SCHEMA", "EvidenceBytes"]

logger = logging.getLogger(__name__)

# Migration 5, in the portable subset (store/migrations.py: BLOB is PostgreSQL's BYTEA).
SCHEMA = """
CREATE TABLE evidence_bytes (
    sha256 TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    at     TEXT NOT NULL
);
"""

FLUSH_AFTER_S = 1.0  # how long files written here wait for their sync (a batch forms meanwhile)
FLUSH_AT = 64  # or this many of them
ADOPT_AFTER_S = 60.0  # rows older than this are flushed by any server
_BATCH = 32  # rows read with their bytes at once when adopting


class EvidenceBytes:
    def __init__(self, store: Store, files: EvidenceFiles, clock: Clock) -> None:
        self.store = store
        self.files = files
        self.clock = clock
        self._mine: dict[str, Path] = {}  # row -> the blob file written for it, not yet synced
        self._copies: list[Path] = []  # readable copies written, not yet synced
        self._flushing = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def hold(self, tx: Tx, sha256: str, data: bytes, ts: str) -> bool:
        """Keep `data` in the transaction that records it; True when this call's row holds
        it (False: another write holds it already, and writes its file)."""
        return (
            tx.execute(
                "INSERT INTO evidence_bytes (sha256, data, at) VALUES (?, ?, ?)"
                " ON CONFLICT (sha256) DO NOTHING",
                (sha256, data, ts),
            )
            == 1
        )

    def copy_out(
        self,
        owned: Sequence[tuple[str, bytes]],
        copies: Sequence[tuple[str, str, str, bytes]],
    ) -> None:
        """After the commit: write the blobs whose rows this write holds, and the readable
        copies, without a sync; the flush syncs them. A failure is logged: the bytes are safe
        in their rows, and a later flush writes them."""
        for sha, data in owned:
            try:
                self._mine[sha] = self.files.write_blob(sha, data)
            except OSError as e:
                logger.error("blob %s is kept in the database for now: %s", sha, e)
        for task, phase, name, data in copies:
            try:
                self._copies.append(self.files.write_copy(task, phase, name, data))
            except OSError as e:
                logger.error(
                    "recorded %s %s %s but could not copy it out: %s", task, phase, name, e
                )
        if self._mine or self._copies:
            self._schedule()

    async def read(self, sha256: str) -> bytes | None:
        """The bytes of a blob still held in its row, or None."""
        row = await self.store.read(
            lambda tx: tx.one("SELECT data FROM evidence_bytes WHERE sha256 = ?", (sha256,))
        )
        return None if row is None else bytes(row[0])

    def _schedule(self) -> None:
        if len(self._mine) + len(self._copies) >= FLUSH_AT:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._start)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._background())

    async def _background(self) -> None:
        try:
            await self.flush()
        except Exception as e:  # tried again at the next batch, and at shutdown
            logger.error("could not sync evidence files: %s", e)

    async def flush(self, *, everything: bool = False, adopt: bool = False) -> int:
        """Sync the files written here and delete their rows. `everything`: also rewrite the
        files of every other row from its bytes (a start after a crash, before serving);
        `adopt`: of rows older than ADOPT_AFTER_S. Returns how many rows were deleted."""
        async with self._flushing:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            mine, self._mine = self._mine, {}
            copies, self._copies = self._copies, []
            if mine or copies:
                try:
                    await asyncio.to_thread(self.files.sync, [*mine.values(), *copies])
                    await self._delete(list(mine))
                except BaseException:
                    self._mine = {**mine, **self._mine}  # tried again with the next batch
                    self._copies = [*copies, *self._copies]
                    raise
            done = len(mine)
            if everything or adopt:
                done += await self._adopt(everything)
            return done

    async def _adopt(self, everything: bool) -> int:
        cutoff = rfc3339(self.clock.now() - timedelta(seconds=0 if everything else ADOPT_AFTER_S))
        rows = await self.store.read(
            lambda tx: tx.all(
                "SELECT sha256 FROM evidence_bytes" + ("" if everything else " WHERE at < ?"),
                () if everything else (cutoff,),
            )
        )
        shas = [str(r[0]) for r in rows]
        for i in range(0, len(shas), _BATCH):
            batch = shas[i : i + _BATCH]
            held, named = await self.store.read(_held_and_named(batch))
            await asyncio.to_thread(self._rewrite, held, named)
            await self._delete([str(r[0]) for r in held])
        if shas:
            logger.info("wrote %d evidence blobs from the database to disk", len(shas))
        return len(shas)

    def _rewrite(self, held: list[Row], named: list[Row]) -> None:
        data_of = {str(sha): bytes(data) for sha, data in held}
        for sha, data in data_of.items():
            self.files.write_blob(sha, data, sync=True)
        for task, phase, name, sha in named:
            with contextlib.suppress(OSError):
                self.files.write_copy(
                    str(task), str(phase), str(name), data_of[str(sha)], sync=True
                )

    async def _delete(self, shas: list[str]) -> None:
        for i in range(0, len(shas), 500):
            await self.store.write(_delete_rows(shas[i : i + 500]))

    async def close(self) -> None:
        """Sync and delete what this process wrote (at shutdown)."""
        await self.flush()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


def _held_and_named(batch: list[str]) -> Callable[[Tx], tuple[list[Row], list[Row]]]:
    """A read of the bytes held for `batch`, and of the artifacts that name them."""
    marks = ",".join("?" * len(batch))

    def read(tx: Tx) -> tuple[list[Row], list[Row]]:
        return (
            tx.all(f"SELECT sha256, data FROM evidence_bytes WHERE sha256 IN ({marks})", batch),
            tx.all(
                f"SELECT task, phase, name, sha256 FROM evidence WHERE sha256 IN ({marks})", batch
            ),
        )

    return read


def _delete_rows(batch: list[str]) -> Callable[[Tx], int]:
    marks = ",".join("?" * len(batch))

    def delete(tx: Tx) -> int:
        return tx.execute(f"DELETE FROM evidence_bytes WHERE sha256 IN ({marks})", batch)

    return delete
