"""Opening a state directory: configuration, store, signing key and ledger, closed together.

The server's lifespan and the CLI both open state through here, so they agree on paths, key
names and durability.

    async with open_runtime(Path("state")) as rt:
        await rt.ledger.append(actor="cli", type="control.freeze_changed")
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .clock import Clock, SystemClock
from .config import Config, load_config
from .ledger import module_projection, projection
from .ledger.keys import Signer
from .ledger.log import CheckpointPolicy, Ledger
from .paths import StatePaths
from .store import MIGRATIONS as LEDGER_MIGRATIONS
from .store import SqliteStore

__all__ = ["MIGRATIONS", "Runtime", "open_runtime"]

logger = logging.getLogger(__name__)

KEY_NAME = "phasegate"
# Schema versions in order: 1 the ledger, 2 the projection of it, 3 governed modules.
MIGRATIONS: list[str] = [*LEDGER_MIGRATIONS, projection.SCHEMA, module_projection.SCHEMA]


@dataclass(frozen=True, slots=True)
class Runtime:
    paths: StatePaths
    config: Config
    clock: Clock
    store: SqliteStore
    signer: Signer
    ledger: Ledger


@contextlib.asynccontextmanager
async def open_runtime(
    state_dir: Path,
    *,
    config: Config | None = None,
    config_path: Path | None = None,
    clock: Clock | None = None,
    checkpoint_on_close: bool = True,
) -> AsyncIterator[Runtime]:
    """Open everything under `state_dir`; on exit sign a final checkpoint and close the store."""
    paths = StatePaths(state_dir)
    cfg = config or load_config(config_path, state_dir=state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    signer = Signer.load_or_create(paths.keys, KEY_NAME)
    store = await SqliteStore.open(
        paths.db,
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
    try:
        yield Runtime(paths, cfg, ledger.clock, store, signer, ledger)
    finally:
        try:
            if checkpoint_on_close:
                await ledger.checkpoint()
        finally:
            await store.close()
