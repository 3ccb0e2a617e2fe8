"""Fixtures for the MCP-server tests; the helpers they use live in server_kit.py.

- `sample_project`: a tiny project with its own passing pytest test (what verify_run runs).
- `config`: the defaults, with verify pointed at the sample project.
- `state_dir`: a fresh state directory under tmp_path (real SQLite, real files).
- `drive`: moves a task forward through the phases with valid artifacts over any MCP client
  (in-memory `Client` or a stdio `ClientSession`): `await drive(client, "T1", Phase.REVIEW)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from server_kit import advance_to, make_config, make_sample_project

from enforcer.config import Config
from enforcer.phases import Phase


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    return make_sample_project(tmp_path / "sample")


@pytest.fixture
def config(sample_project: Path) -> Config:
    return make_config(sample_project)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def drive() -> Callable[[Any, str, Phase], Awaitable[dict[str, Any]]]:
    return advance_to
