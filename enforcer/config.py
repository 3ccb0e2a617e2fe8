"""Configuration from ``phasegate.toml``, validated by pydantic: unknown keys and bad values are
errors that name the key; with no file at all every default holds.

Lookup order: an explicit path, else ``$PHASEGATE_CONFIG``, else ``phasegate.toml`` in the state
directory, else ``./phasegate.toml``, else none.

    config = load_config(None, state_dir=Path("state"))
    config.leases.ttl_s     # 300
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidArgumentError
from .names import check_name
from .phases import Phase
from .policy_config import PolicyConfig

__all__ = [
    "ActorConfig",
    "Config",
    "GateConfig",
    "config_path",
    "load_config",
    "parse_config",
]

Role = Literal["viewer", "operator", "admin"]


# A review rubric's dimensions and the score each must reach (DESIGN.md, Evidence).
DEFAULT_THRESHOLDS: dict[str, int] = {
    "readability": 3,
    "maintainability": 3,
    "performance": 3,
    "security": 3,
    "governance": 3,
}


def _not_done(phase: Phase) -> Phase:
    if phase is Phase.DONE:
        raise ValueError("DONE is terminal: nothing is checked on leaving it")
    return phase


# A phase that can be left: gates and attestation checks apply to these only.
LivePhase = Annotated[Phase, AfterValidator(_not_done)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    durability: Literal["FULL", "NORMAL"] = "FULL"
    busy_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = 10_000
    # PostgreSQL, shared by several servers: "postgresql://user@host/db"; absent: SQLite in the
    # state directory. Every server of one deployment must use the same URL and --state-dir.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (leave it out for SQLite)")
        return value


class LedgerConfig(_Section):
    checkpoint_every: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    checkpoint_interval_s: Annotated[float, Field(gt=0, le=86_400)] = 30.0
    # One caller's identical refusals within this window are written as one counted entry.
    refusal_window_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0


class VerifyConfig(_Section):
    # argv, never a shell string; {junit} is replaced by the path of the JUnit XML report.
    command: Annotated[list[str], Field(min_length=1)] = [
        "python",
        "-m",
        "pytest",
        "-q",
        "--junitxml={junit}",
    ]
    timeout_s: Annotated[float, Field(gt=0, le=86_400)] = 600
    # Where the command runs; relative paths are taken from the server's working directory.
    cwd: str = "."
    # Keep only this much of the combined output in build_output.log.
    max_log_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024


class LeaseConfig(_Section):
    ttl_s: Annotated[int, Field(ge=1, le=86_400)] = 300


class AttestationConfig(_Section):
    error_phases: list[LivePhase] = [Phase.VERIFY, Phase.REVIEW, Phase.MONITOR]


class GateConfig(_Section):
    """Per-phase gate: which artifacts must be present and valid to leave the phase."""

    artifacts: list[str]
    # VERIFY: accept only server-produced results whose subject is the current IMPLEMENT diff.
    require_server_results: bool = True

    @field_validator("artifacts")
    @classmethod
    def _plain_names(cls, value: list[str]) -> list[str]:
        # A name evidence_put refuses could never be recorded: the gate would never pass.
        for name in value:
            try:
                check_name(name)
            except InvalidArgumentError as e:
                raise ValueError(f"{name[:40]!r} is not a plain file name") from e
        return value


class ReviewConfig(_Section):
    thresholds: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(
        default_factory=lambda: dict(DEFAULT_THRESHOLDS)
    )


class ActorConfig(_Section):
    role: Role = "operator"
    token_sha256: str | None = None

    @field_validator("token_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and (
            len(value) != 64 or any(c not in "0123456789abcdef" for c in value)
        ):
            raise ValueError("must be 64 lowercase hex characters (sha256 of the token)")
        return value


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8765


class TelemetryConfig(_Section):
    enabled: bool = True
    # How often metrics are written; spans are batched and written about every second.
    export_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0


class Config(_Section):
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    verify: VerifyConfig = VerifyConfig()
    leases: LeaseConfig = LeaseConfig()
    attestation: AttestationConfig = AttestationConfig()
    gates: dict[LivePhase, GateConfig] = {}
    review: ReviewConfig = ReviewConfig()
    actors: dict[str, ActorConfig] = {}
    server: ServerConfig = ServerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    # Router table overrides: tool name -> phases where it is allowed (issue-level contract).
    tools: dict[str, list[Phase]] = {}
    # Risk, paths, approvals, limits and windows for governed modules (enforcer/policy_config.py).
    policy: PolicyConfig = PolicyConfig()

    def error_phases(self) -> frozenset[Phase]:
        return frozenset(self.attestation.error_phases)


def config_path(explicit: Path | None, state_dir: Path | None) -> Path | None:
    """The file the lookup order selects, or None."""
    if explicit is not None:
        return explicit
    env = os.environ.get("PHASEGATE_CONFIG")
    if env:
        return Path(env)
    for candidate in ([state_dir / "phasegate.toml"] if state_dir else []) + [
        Path("phasegate.toml")
    ]:
        if candidate.is_file():
            return candidate
    return None


def load_config(
    explicit: Path | None = None,
    *,
    state_dir: Path | None = None,
    tools: frozenset[str] | None = None,
) -> Config:
    """Load and validate; raises InvalidArgumentError naming the file and the bad key.

    `tools`: the tool names `[tools]` may name (the server's catalogue); any other is refused
    here, at load, so every command that reads the file refuses it alike."""
    path = config_path(explicit, state_dir)
    if path is None:
        return Config()
    config = _parse(path)
    unknown = sorted(set(config.tools) - tools) if tools is not None else []
    if unknown:
        raise InvalidArgumentError(
            f"{path}: [tools] names unknown tool(s): {', '.join(unknown)}",
            hint="tool names: " + ", ".join(sorted(tools or ())),
            details={"path": str(path), "keys": [f"tools.{name}" for name in unknown]},
        )
    return config


def _parse(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"cannot read config {path}: {e}") from e
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate the text of `path` (the policy re-reads a file it watches through this)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgumentError(
            f"{path}: not valid TOML: {e}", details={"path": str(path)}
        ) from e
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        keys = [".".join(str(p) for p in err["loc"]) for err in errors]
        problems = "; ".join(f"{k}: {err['msg']}" for k, err in zip(keys, errors, strict=True))
        raise InvalidArgumentError(
            f"{path}: invalid configuration: {problems}",
            details={"path": str(path), "keys": keys},
        ) from e
