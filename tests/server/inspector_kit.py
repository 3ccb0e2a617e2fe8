"""Drive the real MCP Inspector CLI (npm `@modelcontextprotocol/inspector`) from pytest.

Checked against Inspector 2.12.0 on Node 20.20.2 (the package declares node >=22.19.0; npm warns
EBADENGINE at install time, the CLI itself prints no engine warning at run time).

    from inspector_kit import ensure_inspector, StdioTarget, HttpTarget, run_inspector

    inspector = ensure_inspector(tmp_cache_dir)                 # npm install once, then reused
    target = StdioTarget(["phasegate", "serve", "--state-dir", str(d)])
    r = run_inspector(inspector, target, "tools/call",
                      tool_name="phase_advance", tool_args={"task": "T1", "to": "PLAN"})
    assert r.returncode == 5                                    # EXIT_TOOL_ERROR: isError true
    assert r.tool_error_body()["error"]["code"] == "PHASE_SKIP"

    r = run_inspector(inspector, HttpTarget(url, token="..."), "tools/list")

What the helper does so that a run is non-interactive and hermetic:
  * stdin is /dev/null and stdout/stderr are pipes, so the Inspector never starts interactive
    OAuth (it requires a TTY); HTTP runs also pass `--stored-auth-only` by default.
  * HOME is a private directory (default `<install dir>/home`): with a TTY the Inspector writes
    `~/.mcp-inspector/storage/oauth.json`; MCP_INSPECTOR_SECRET_STORE=memory; MCP_AUTO_OPEN_ENABLED
    is removed from the environment.
  * target and options are separated by `--` (`--tool-arg`, `--header` and `-e` are variadic and
    would otherwise swallow the command), and the server's own flags (`--config`, ...) are safe
    after it.
  * tool arguments go as `--tool-args-json` (verbatim) unless arg_style="pairs": `--tool-arg k=v`
    JSON-parses each value, so `task=123` is sent as the number 123 and `k=` is refused.
  * a stdio server gets only HOME, LC_CTYPE, PATH, SHELL, TERM from the Inspector plus what
    `StdioTarget.env` passes with `-e`: the parent's environment is NOT inherited.
  * the Inspector runs in its own process group, killed as a group on timeout (no stray server).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = [
    "DEFAULT_VERSION",
    "EXIT_AUTH_REQUIRED",
    "EXIT_NO_APP",
    "EXIT_OK",
    "EXIT_SCHEMA_UNPORTABLE",
    "EXIT_TOOL_ERROR",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "HttpTarget",
    "Inspector",
    "InspectorError",
    "InspectorResult",
    "InspectorTimeout",
    "StdioTarget",
    "available_versions",
    "ensure_inspector",
    "node_version",
    "run_inspector",
]

PACKAGE = "@modelcontextprotocol/inspector"
DEFAULT_VERSION = "2.12.0"

# The CLI's EXIT_CODES (clients/cli/build/index.js, 2.12.0).
EXIT_OK = 0
EXIT_USAGE = 1  # any other failure, including an output-schema violation of a tool result
EXIT_NO_APP = 2
EXIT_AUTH_REQUIRED = 3  # HTTP 401 (envelope code "auth_required")
EXIT_UNREACHABLE = 4  # ECONNREFUSED, timeouts, ...
EXIT_TOOL_ERROR = 5  # tools/call result with isError: true
EXIT_SCHEMA_UNPORTABLE = 6  # tools/list --strict with an error-severity finding

Method = Literal["tools/list", "tools/call"]


class InspectorError(RuntimeError):
    """Installing or finding the Inspector failed."""


class InspectorTimeout(TimeoutError):
    """The Inspector did not finish in time; it and its process group were killed."""

    def __init__(self, argv: Sequence[str], timeout_s: float, stdout: str, stderr: str) -> None:
        super().__init__(
            f"inspector timed out after {timeout_s}s: {' '.join(argv)}\n{stderr[-2000:]}"
        )
        self.argv = list(argv)
        self.stdout = stdout
        self.stderr = stderr


class InspectorResult(NamedTuple):
    """(exit code, stdout, stderr) of one Inspector CLI run, plus the argv that produced it."""

    returncode: int
    stdout: str
    stderr: str
    argv: tuple[str, ...] = ()

    def result(self) -> dict[str, Any]:
        """The MCP result: stdout parsed (`--format json` wraps it as {"result": ...})."""
        data = json.loads(self.stdout)
        envelope_keys = {"result", "schemaFindings", "appInfo"}
        if isinstance(data, dict) and "result" in data and not data.keys() - envelope_keys:
            inner = data["result"]
            assert isinstance(inner, dict)
            return inner
        assert isinstance(data, dict)
        return data

    def schema_findings(self) -> list[dict[str, Any]]:
        """`--format json --strict` tools/list findings ([] when there are none)."""
        data = json.loads(self.stdout)
        findings = data.get("schemaFindings", []) if isinstance(data, dict) else []
        assert isinstance(findings, list)
        return findings

    def error_envelope(self) -> dict[str, Any] | None:
        """The CLI's own `{"error": {"code", "message", ...}}` line on stderr (last one), if any."""
        for line in reversed(self.stderr.splitlines()):
            line = line.strip()
            if line.startswith('{"error"'):
                with contextlib.suppress(ValueError):
                    env = json.loads(line)
                    err = env.get("error") if isinstance(env, dict) else None
                    if isinstance(err, dict):
                        return err
        return None

    def tool_error_body(self) -> Any:
        """For an isError result: the JSON of its first text content (phasegate's error body)."""
        res = self.result()
        for item in res.get("content", []):
            if item.get("type") == "text":
                return json.loads(item["text"])
        raise ValueError("result has no text content")


@dataclass(frozen=True)
class Inspector:
    """An installed Inspector: run it as `node <bin_js> --cli ...`."""

    root: Path  # the npm --prefix directory
    version: str
    node: str = "node"

    @property
    def bin_js(self) -> Path:
        pkg = self.root / "node_modules" / "@modelcontextprotocol" / "inspector"
        return pkg / "clients" / "launcher" / "build" / "index.js"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def base_argv(self) -> list[str]:
        return [self.node, str(self.bin_js), "--cli"]


@dataclass(frozen=True)
class StdioTarget:
    command: Sequence[
        str
    ]  # argv of the server, e.g. [".venv/bin/phasegate", "serve", "--state-dir", D]
    # passed with -e: besides these the server gets only HOME, LC_CTYPE, PATH, SHELL, TERM
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True)
class HttpTarget:
    url: str  # e.g. http://127.0.0.1:PORT/mcp
    token: str | None = None  # sent as "Authorization: Bearer TOKEN"
    headers: Mapping[str, str] = field(default_factory=dict)
    stored_auth_only: bool = True  # never start interactive OAuth, whatever stdin/stderr are


def node_version(node: str = "node") -> str:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.strip()


def available_versions(npm: str = "npm", timeout_s: float = 60.0) -> list[str]:
    out = subprocess.run(
        [npm, "view", PACKAGE, "versions", "--json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    versions = json.loads(out.stdout)
    return [versions] if isinstance(versions, str) else list(versions)


def _installed_version(root: Path) -> str | None:
    pkg = root / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    try:
        version = json.loads(pkg.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_inspector(
    root: str | os.PathLike[str],
    version: str = DEFAULT_VERSION,
    *,
    npm: str = "npm",
    node: str = "node",
    timeout_s: float = 300.0,
    check_registry: bool = True,
) -> Inspector:
    """Install `@modelcontextprotocol/inspector@version` under `root` unless already there.

    Safe to call from parallel workers (an flock serialises the install). Raises InspectorError
    when npm or node is missing, the version is not published, or the install fails.
    """
    root_p = Path(root).resolve()
    insp = Inspector(root_p, version, node)
    if _installed_version(root_p) == version and insp.bin_js.is_file():
        return insp
    for tool in (npm, node):
        if shutil.which(tool) is None:
            raise InspectorError(f"{tool} not found on PATH")
    with _locked(root_p / ".inspector-install.lock"):
        if _installed_version(root_p) == version and insp.bin_js.is_file():
            return insp
        if check_registry:
            try:
                versions = available_versions(npm, timeout_s=min(timeout_s, 60.0))
            except (subprocess.SubprocessError, ValueError) as e:
                raise InspectorError(f"npm view {PACKAGE} versions failed: {e}") from e
            if version not in versions:
                raise InspectorError(
                    f"{PACKAGE}@{version} is not published (latest: {versions[-1:]})"
                )
        argv = [
            npm,
            "install",
            "--prefix",
            str(root_p),
            f"{PACKAGE}@{version}",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as e:
            raise InspectorError(f"npm install timed out after {timeout_s}s") from e
        if (
            proc.returncode != 0
            or _installed_version(root_p) != version
            or not insp.bin_js.is_file()
        ):
            raise InspectorError(f"npm install failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return insp


def _inspector_env(insp: Inspector, home: str | os.PathLike[str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MCP_AUTO_OPEN_ENABLED", None)  # would let OAuth open a browser without a TTY
    for key in (
        "MCP_CATALOG_PATH",
        "MCP_CLIENT_CONFIG_PATH",
        "MCP_INSPECTOR_OAUTH_STATE_PATH",
        "MCP_STORAGE_DIR",
    ):
        env.pop(key, None)
    home_p = Path(home) if home is not None else insp.home
    home_p.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home_p)
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"
    env["NO_COLOR"] = "1"
    return env


def build_argv(
    insp: Inspector,
    target: StdioTarget | HttpTarget,
    method: Method,
    *,
    tool_name: str | None = None,
    tool_args: Mapping[str, Any] | None = None,
    arg_style: Literal["json", "pairs"] = "json",
    fmt: Literal["text", "json"] = "json",
    quiet: bool = False,
    strict: bool = False,
    connect_timeout_ms: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = insp.base_argv() + ["--method", method, "--format", fmt]
    if connect_timeout_ms is not None:  # the CLI's default is 15000 (then exit 4, "unreachable")
        argv += ["--connect-timeout", str(connect_timeout_ms)]
    if quiet:
        argv.append("-q")
    if strict:
        argv.append("--strict")
    if method == "tools/call":
        if not tool_name:
            raise ValueError("tools/call needs tool_name")
        argv += ["--tool-name", tool_name]
        if tool_args:
            if arg_style == "json":
                argv += ["--tool-args-json", json.dumps(dict(tool_args))]
            else:
                for k, v in tool_args.items():
                    argv += ["--tool-arg", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    if isinstance(target, HttpTarget):
        argv += ["--transport", "http"]
        headers = dict(target.headers)
        if target.token is not None:
            headers["Authorization"] = f"Bearer {target.token}"
        for name, value in headers.items():
            argv += ["--header", f"{name}: {value}"]
        if target.stored_auth_only:
            argv.append("--stored-auth-only")
        argv += list(extra)
        argv += ["--", target.url]
    else:
        for k, v in target.env.items():
            argv += ["-e", f"{k}={v}"]
        if target.cwd is not None:
            argv += ["--cwd", target.cwd]
        argv += list(extra)
        argv += ["--", *target.command]
    return argv


def run_inspector(
    insp: Inspector,
    target: StdioTarget | HttpTarget,
    method: Method,
    *,
    tool_name: str | None = None,
    tool_args: Mapping[str, Any] | None = None,
    arg_style: Literal["json", "pairs"] = "json",
    fmt: Literal["text", "json"] = "json",
    quiet: bool = False,
    strict: bool = False,
    connect_timeout_ms: int | None = None,
    extra: Sequence[str] = (),
    timeout_s: float = 60.0,
    home: str | os.PathLike[str] | None = None,
) -> InspectorResult:
    """Run one Inspector CLI call; return (exit code, stdout, stderr). Raises InspectorTimeout."""
    argv = build_argv(
        insp,
        target,
        method,
        tool_name=tool_name,
        tool_args=tool_args,
        arg_style=arg_style,
        fmt=fmt,
        quiet=quiet,
        strict=strict,
        connect_timeout_ms=connect_timeout_ms,
        extra=extra,
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_inspector_env(insp, home),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise InspectorTimeout(argv, timeout_s, out, err) from None
    finally:
        _reap_group(proc.pid)
    return InspectorResult(proc.returncode, out, err, tuple(argv))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap_group(pgid: int, grace_s: float = 2.0) -> None:
    """The CLI waits for its stdio server before it exits (checked: the group is empty then);
    if anything of the group is left, SIGTERM it, then SIGKILL after a grace period."""
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
