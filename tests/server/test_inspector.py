"""The real MCP Inspector CLI (npm `@modelcontextprotocol/inspector`, run with the machine's
Node.js) against `phasegate serve`, over stdio and over streamable HTTP with a bearer token.

The Inspector validates `structuredContent` against a tool's output schema even on error
results, so these prove what a third-party client sees: a refusal arrives as a tool error
(exit 5) whose text holds the code and the hint; a success passes its schema check (exit 0);
the schemas raise no portability findings; a missing or unknown token fails cleanly (exit 3)
instead of starting an OAuth flow.

The Inspector is installed once into $PHASEGATE_INSPECTOR_DIR (.ci/run sets it) or a cache
directory; without Node.js and npm these tests fail, as any missing test dependency does.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspector_kit import (
    EXIT_AUTH_REQUIRED,
    EXIT_OK,
    EXIT_TOOL_ERROR,
    HttpTarget,
    Inspector,
    StdioTarget,
    ensure_inspector,
    run_inspector,
)
from server_kit import REPO, http_serving, toml_text

TOKEN = "inspector-operator-token-42"


@pytest.fixture(scope="session")
def inspector() -> Inspector:
    where = os.environ.get("PHASEGATE_INSPECTOR_DIR") or str(
        Path.home() / ".cache" / "phasegate-tests" / "inspector"
    )
    return ensure_inspector(where)


def _stdio(state_dir: Path) -> StdioTarget:
    return StdioTarget(
        [sys.executable, "-m", "server.cli", "serve", "--state-dir", str(state_dir)],
        cwd=str(REPO),
    )


def _refused_skip(result: object) -> None:
    from inspector_kit import InspectorResult

    assert isinstance(result, InspectorResult)
    assert result.returncode == EXIT_TOOL_ERROR, (result.stdout, result.stderr)
    body = result.tool_error_body()
    assert body["error"]["code"] == "PHASE_SKIP", body
    assert "next phase is SPEC" in body["error"]["hint"], body
    assert "structuredContent" not in result.result()


def test_a_refused_advance_reaches_the_inspector_over_stdio_as_a_tool_error(
    inspector: Inspector, tmp_path: Path
) -> None:
    target = _stdio(tmp_path / "state")
    started = run_inspector(
        inspector,
        target,
        "tools/call",
        tool_name="task_start",
        tool_args={"title": "inspected", "task": "T1"},
    )
    assert started.returncode == EXIT_OK, (started.stdout, started.stderr)
    assert started.result()["structuredContent"]["phase"] == "STRATEGIZE"
    refused = run_inspector(
        inspector,
        target,
        "tools/call",
        tool_name="phase_advance",
        tool_args={"task": "T1", "to": "PLAN"},
    )
    _refused_skip(refused)


def test_the_tool_schemas_raise_no_portability_findings(
    inspector: Inspector, tmp_path: Path
) -> None:
    listed = run_inspector(inspector, _stdio(tmp_path / "state"), "tools/list", strict=True)
    assert listed.returncode == EXIT_OK, (listed.stdout, listed.stderr)
    assert listed.schema_findings() == []
    assert "Schema portability" not in listed.stderr


@pytest.fixture
def http_url(tmp_path: Path, sample_project: Path) -> Iterator[str]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (state_dir / "phasegate.toml").write_text(
        toml_text(sample_project, f'[actors.op1]\nrole = "operator"\ntoken_sha256 = "{digest}"\n')
    )
    log = tmp_path / "http.log"
    with http_serving(state_dir, log) as url:
        yield url
    assert "Warning" not in log.read_text(), log.read_text()  # no deprecation warnings at start


def test_a_refused_advance_reaches_the_inspector_over_http_with_a_bearer_token(
    inspector: Inspector, http_url: str
) -> None:
    target = HttpTarget(http_url, token=TOKEN)
    started = run_inspector(
        inspector,
        target,
        "tools/call",
        tool_name="task_start",
        tool_args={"title": "t", "task": "T1"},
    )
    assert started.returncode == EXIT_OK, (started.stdout, started.stderr)
    assert started.result()["structuredContent"]["created_by"] == "op1"
    status = run_inspector(
        inspector, target, "tools/call", tool_name="task_status", tool_args={"task": "T1"}
    )
    assert status.returncode == EXIT_OK, (status.stdout, status.stderr)  # passed its schema check
    _refused_skip(
        run_inspector(
            inspector,
            target,
            "tools/call",
            tool_name="phase_advance",
            tool_args={"task": "T1", "to": "PLAN"},
        )
    )


@pytest.mark.parametrize("token", [None, "not-a-known-token"])
def test_a_missing_or_unknown_token_fails_cleanly_without_oauth(
    inspector: Inspector, http_url: str, token: str | None
) -> None:
    done = run_inspector(inspector, HttpTarget(http_url, token=token), "tools/list")
    assert done.returncode == EXIT_AUTH_REQUIRED, (done.stdout, done.stderr)
    envelope = done.error_envelope()
    assert envelope is not None and envelope["code"] == "auth_required", done.stderr
    assert "Dynamic Client Registration" not in done.stderr
