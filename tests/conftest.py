"""The shared test kits live beside the tests that first needed them (tests/enforcer,
tests/server); tests in the sub-folders that mirror the source tree import them by name.

The PostgreSQL fixtures are here because tests of both trees use them: `pg_server` (one server
per session), `pg_url` (a fresh schema on it per test) and `store_url`, which runs a test once
per store (SQLite, then PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for kit_dir in (
    _HERE / "enforcer",
    _HERE / "server",
    _HERE / "enforcer" / "modules",
    _HERE / "enforcer" / "policy",
    _HERE / "server" / "web",
):
    if str(kit_dir) not in sys.path:
        sys.path.insert(0, str(kit_dir))


# ------------------------------------------------------------------ PostgreSQL

from pg_kit import URL_ENV, PgUnavailable, running_cluster, schema_url  # noqa: E402


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a developer's machine a test whose host lacks something (root for a tmpfs, user
    namespaces, bubblewrap, PostgreSQL, Debian's chromium) is skipped with that reason; in CI
    (CI=true), which installs all of it and runs as root, such a skip is a failure, so a missing
    install step cannot turn into tests quietly not run."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the whole session: $PHASEGATE_TEST_PG_URL, else a throwaway
    cluster started from the installed binaries (stopped and removed at the end). Where none
    can start, tests that need it are skipped with the reason — except in CI (CI=true), where
    every skip is a failure: CI must run the PostgreSQL contract tests."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    stack = contextlib.ExitStack()
    try:
        cluster = stack.enter_context(running_cluster())
    except PgUnavailable as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")  # a failure in CI (below)
    with stack:
        yield cluster.url()


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A URL whose connections use a new, empty schema of the session's server."""
    return schema_url(pg_server)[0]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """Each store in turn: None (SQLite in the state directory), then a PostgreSQL URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))
