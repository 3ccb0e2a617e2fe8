"""Opening a state directory: configuration, store, signing key and ledger, closed together.

The server's lifespan and the CLI both open state through here, so they agree on paths, key
names and durability. The store is SQLite in the state directory unless a PostgreSQL URL is
given (`store_url`, else ``[store] url``); the keys, checkpoints, evidence and blobs stay in the
state directory either way, which every server over one database must share.

    async with open_runtime(Path("state")) as rt:
        await rt.ledger.append(actor="cli", type="control.freeze_changed")
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .clock import Clock, SystemClock
from .config import Config, load_config
from .config import config_path as find_config
from .errors import StorageFullError, WritesRefusedError
from .ledger import module_projection, policy_projection, projection
from .ledger.keys import Signer
from .ledger.log import CheckpointPolicy, Ledger
from .paths import StatePaths
from .process import evidence_bytes
from .store import MIGRATIONS as LEDGER_MIGRATIONS
from .store import MigrationLike, Store, open_store

__all__ = ["MIGRATIONS", "Runtime", "open_runtime"]

logger = logging.getLogger(__name__)

KEY_NAME = "phasegate"
# Schema versions in order: 1 the ledger, 2 the projection of it, 3 governed modules, 4 policy,
# 5 evidence bytes until their files are synced.
MIGRATIONS: list[MigrationLike] = [
    *LEDGER_MIGRATIONS,
    projection.SCHEMA,
    module_projection.SCHEMA,
    policy_projection.SCHEMA,
    evidence_bytes.SCHEMA,
]


@dataclass(frozen=True, slots=True)
class Runtime:
    paths: StatePaths
    config: Config
    clock: Clock
    store: Store
    signer: Signer
    ledger: Ledger
    store_url: str | None = None  # PostgreSQL; None: SQLite at paths.db
    # The phasegate.toml the configuration came from, which the policy re-reads while serving
    # (None: defaults, or a Config handed in without a file).
    config_file: Path | None = None
    # Awaited, newest first, before the final checkpoint (the services' background work).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def open_runtime(
    state_dir: Path,
    *,
    config: Config | None = None,
    config_path: Path | None = None,
    clock: Clock | None = None,
    checkpoint_on_close: bool = True,
    store_url: str | None = None,
    config_file: Path | None = None,
) -> AsyncIterator[Runtime]:
    """Open everything under `state_dir`; on exit sign a final checkpoint and close the store.

    `store_url` (a PostgreSQL URL) overrides ``[store] url``; with neither, SQLite.
    `config_file`: the file `config` was loaded from, when one is handed in (else the file the
    lookup finds); the policy watches it for changes while serving."""
    paths = StatePaths(state_dir)
    if config is None:
        config_file = find_config(config_path, state_dir)
    cfg = config or load_config(config_path, state_dir=state_dir)
    url = store_url or cfg.store.url
    state_dir.mkdir(parents=True, exist_ok=True)
    signer = Signer.load_or_create(paths.keys, KEY_NAME)
    store = await open_store(
        db=paths.db,
        url=url,
        durability=cfg.store.durability,
        busy_timeout_ms=cfg.store.busy_timeout_ms,
        migrations=MIGRATIONS,
    )
    ledger = Ledger(
        store,
        clock or SystemClock(),
        signer,
        paths.checkpoints,
        CheckpointPolicy(cfg.ledger.checkpoint_every, cfg.ledger.checkpoint_interval_s),
    )
    runtime = Runtime(paths, cfg, ledger.clock, store, signer, ledger, url, config_file)
    try:
        yield runtime
    finally:
        try:
            for close in reversed(runtime.closers):
                try:
                    await close()
                except Exception as e:  # what it left is picked up by the next start
                    logger.error("could not finish background work at close: %s", e)
            if checkpoint_on_close and ledger.refusal is None:
                try:
                    await ledger.checkpoint()
                except WritesRefusedError:
                    pass  # logged, and answered to writes
                except StorageFullError as e:  # the next start signs what is unsigned
                    logger.error("no final checkpoint: %s", e.message)
        finally:
            await store.close()
