"""phasegate.toml: validated sections, errors naming the key, defaults without a file."""

from __future__ import annotations

from pathlib import Path

import pytest
from phasegate_testkit import ALICE, VALID, rubric

from enforcer.clock import ManualClock
from enforcer.config import Config, config_path, load_config
from enforcer.errors import PhasegateError
from enforcer.phases import Phase
from enforcer.runtime import open_runtime
from enforcer.service import Enforcer


@pytest.fixture(autouse=True)
def _no_ambient_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHASEGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_no_file_at_all_gives_every_default(tmp_path: Path) -> None:
    assert config_path(None, tmp_path / "state") is None
    config = load_config(None, state_dir=tmp_path / "state")
    assert config == Config()
    assert config.store.durability == "FULL"
    assert config.leases.ttl_s == 300
    assert config.verify.timeout_s == 600 and "{junit}" in " ".join(config.verify.command)
    assert config.attestation.error_phases == ["VERIFY", "REVIEW", "MONITOR"]
    assert config.error_phases() == {Phase.VERIFY, Phase.REVIEW, Phase.MONITOR}
    assert config.gates == {} and config.actors == {}


def test_the_design_example_file_loads(tmp_path: Path) -> None:
    text = """
[store]
durability = "NORMAL"
[verify]
command = ["python", "-m", "pytest", "-q", "--junitxml={junit}"]
timeout_s = 600
[leases]
ttl_s = 120
[attestation]
error_phases = ["VERIFY", "REVIEW", "MONITOR"]
[actors.alice]
role = "admin"
token_sha256 = "TOKEN"
""".replace("TOKEN", "ab" * 32)
    config = load_config(write(tmp_path / "phasegate.toml", text))
    assert config.store.durability == "NORMAL" and config.leases.ttl_s == 120
    assert config.actors["alice"].role == "admin"


UNKNOWN_KEYS = [
    ("[bogus]\nx = 1\n", "bogus"),
    ("verbose = true\n", "verbose"),
    ("[leases]\nttl = 5\n", "leases.ttl"),
    ("[store]\ndurabilty = 'FULL'\n", "store.durabilty"),
    ("[actors.alice]\nrol = 'admin'\n", "actors.alice.rol"),
    ("[gates.SPEC]\nartifacts = ['spec.md']\nextra = 1\n", "gates.SPEC.extra"),
    ("[gates.NOPE]\nartifacts = []\n", "gates.NOPE"),
    ("[gates.DONE]\nartifacts = []\n", "gates.DONE"),
]

BAD_VALUES = [
    ("[store]\ndurability = 'FAST'\n", "store.durability"),
    ("[leases]\nttl_s = 0\n", "leases.ttl_s"),
    ("[leases]\nttl_s = 'long'\n", "leases.ttl_s"),
    ("[verify]\ncommand = 'pytest -q'\n", "verify.command"),
    ("[verify]\ncommand = []\n", "verify.command"),
    ("[verify]\ntimeout_s = -1\n", "verify.timeout_s"),
    ("[attestation]\nerror_phases = ['DONE']\n", "attestation.error_phases"),
    ("[actors.alice]\nrole = 'god'\n", "actors.alice.role"),
    ("[actors.alice]\ntoken_sha256 = 'abc'\n", "actors.alice.token_sha256"),
    ("[gates.SPEC]\nartifacts = ['../x']\n", "gates.SPEC.artifacts"),
    ("[gates.SPEC]\nartifacts = 'spec.md'\n", "gates.SPEC.artifacts"),
    ("[review.thresholds]\nsecurity = 6\n", "review.thresholds.security"),
    ("[server]\nport = 70000\n", "server.port"),
]


@pytest.mark.parametrize(("text", "key"), UNKNOWN_KEYS + BAD_VALUES, ids=lambda x: str(x)[:30])
def test_unknown_keys_and_bad_values_are_refused_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = write(tmp_path / "phasegate.toml", text)
    with pytest.raises(PhasegateError) as err:
        load_config(path)
    assert err.value.code == "INVALID_ARGUMENT"
    assert err.value.details["path"] == str(path)
    assert key in str(err.value)  # the message names the offending key


@pytest.mark.parametrize("text", ["[leases\nttl_s = 1\n", "ttl_s = = 1\n", "\x00"])
def test_a_file_that_is_not_toml_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(PhasegateError) as err:
        load_config(write(tmp_path / "phasegate.toml", text))
    assert err.value.code == "INVALID_ARGUMENT"


def test_an_explicit_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PhasegateError) as err:
        load_config(tmp_path / "missing.toml")
    assert err.value.code == "INVALID_ARGUMENT"


def test_the_lookup_order_is_explicit_then_environment_then_state_dir_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    cwd_file = write(tmp_path / "phasegate.toml", "[leases]\nttl_s = 1\n")
    assert load_config(None, state_dir=state).leases.ttl_s == 1
    write(state / "phasegate.toml", "[leases]\nttl_s = 2\n")
    assert load_config(None, state_dir=state).leases.ttl_s == 2
    env_file = write(tmp_path / "env.toml", "[leases]\nttl_s = 3\n")
    monkeypatch.setenv("PHASEGATE_CONFIG", str(env_file))
    assert load_config(None, state_dir=state).leases.ttl_s == 3
    explicit = write(tmp_path / "explicit.toml", "[leases]\nttl_s = 4\n")
    assert load_config(explicit, state_dir=state).leases.ttl_s == 4
    assert config_path(None, state) == env_file and cwd_file.exists()


async def test_custom_gates_review_thresholds_and_ttl_from_the_file_are_honoured(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    write(
        state / "phasegate.toml",
        """
[leases]
ttl_s = 5
[gates.SPEC]
artifacts = ["spec.md", "notes.md"]
[gates.PLAN]
artifacts = []
[review.thresholds]
security = 5
""",
    )
    async with open_runtime(state, clock=ManualClock()) as rt:  # found in the state dir
        e = Enforcer(rt)
        status = await e.task_start(ALICE, "t", "T1")
        assert status.lease is not None
        assert status.lease.expires_at == "2026-01-01T00:00:05.000000Z"
        await e.evidence_put(ALICE, "T1", *VALID[Phase.STRATEGIZE])
        await e.phase_advance(ALICE, "T1")
        await e.evidence_put(ALICE, "T1", *VALID[Phase.SPEC])
        with pytest.raises(PhasegateError) as err:
            await e.phase_advance(ALICE, "T1")
        assert err.value.code == "EVIDENCE_MISSING"
        problems = err.value.details["gate"]["problems"]
        assert [p["artifact"] for p in problems] == ["notes.md"]
        assert (await e.task_status("T1")).gate.required == ("spec.md", "notes.md")
        await e.evidence_put(ALICE, "T1", "notes.md", "talked to the owner")
        await e.phase_advance(ALICE, "T1")
        # PLAN's gate is configured empty: nothing needed to leave it.
        assert (await e.phase_advance(ALICE, "T1")).task.phase is Phase.THINK
        # The configured threshold applies to the rubric's content check.
        rec = await e.evidence_put(ALICE, "T1", "review_rubric.json", rubric(4))
        assert not rec.valid and any("security" in p for p in rec.problems)
        assert (await e.evidence_put(ALICE, "T1", "review_rubric.json", rubric(5))).valid
