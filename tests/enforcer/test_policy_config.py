"""The [policy] section: validated on load, every fault named by its key; one hash per meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from enforcer.config import Config, load_config
from enforcer.errors import InvalidArgumentError
from enforcer.policy import PolicySet
from enforcer.policy_config import PolicyConfig


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "phasegate.toml"
    path.write_text(text)
    return load_config(path)


def test_defaults_are_the_design_defaults() -> None:
    p = Config().policy
    assert p.auto_approve == ["LOW"] and p.approval_expiry_s == 86400
    assert p.max_promotions_per_day == 20
    assert (p.rollback_window_s.LOW, p.rollback_window_s.MEDIUM, p.rollback_window_s.HIGH) == (
        259200,
        604800,
        2592000,
    )
    assert (p.risk.high_paths, p.risk.medium_changed_lines, p.risk.medium_files) == ([], 50, 10)
    assert p.modules == {}


def test_the_design_example_loads(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[policy]
auto_approve = ["LOW"]
approval_expiry_s = 86400
max_promotions_per_day = 20
rollback_window_s = { LOW = 259200, MEDIUM = 604800, HIGH = 2592000 }
[policy.risk]
high_paths = ["**/auth/**"]
medium_changed_lines = 50
medium_files = 10
[policy.modules.skills]
forbidden_paths = ["secrets/**"]
locked_paths = ["LICENSE"]
install_windows = ["Mon-Fri 08:00-18:00"]
""",
    )
    assert config.policy.modules["skills"].locked_paths == ["LICENSE"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[policy]\nauto_aprove = ['LOW']\n", "policy.auto_aprove"),
        ("[policy.risk]\nhgh_paths = ['x']\n", "policy.risk.hgh_paths"),
        ("[policy]\nrollback_window_s = { MEDUIM = 3 }\n", "policy.rollback_window_s.MEDUIM"),
        (
            "[policy.modules.skills]\nforbiden_paths = ['x']\n",
            "policy.modules.skills.forbiden_paths",
        ),
        ("[policy]\nauto_approve = ['low']\n", "policy.auto_approve.0"),
        ("[policy]\nmax_promotions_per_day = '20'\n", "policy.max_promotions_per_day"),
        ("[policy]\napproval_expiry_s = 10\n", "policy.approval_expiry_s"),
        ("[policy.risk]\nmedium_files = -1\n", "policy.risk.medium_files"),
        (
            "[policy.modules.skills]\nlocked_paths = ['x\\']\n",
            "policy.modules.skills.locked_paths.0",
        ),
        ("[policy.modules.skills]\nlocked_paths = ['']\n", "policy.modules.skills.locked_paths.0"),
        (
            "[policy.modules.skills]\ninstall_windows = ['Mon-Fry 08:00-18:00']\n",
            "policy.modules.skills.install_windows.0",
        ),
        ("[policy.modules.'bad name']\nlocked_paths = []\n", "policy.modules.bad name.[key]"),
    ],
)
def test_a_fault_is_refused_naming_its_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        load(tmp_path, text)
    assert key in caught.value.details["keys"], caught.value.details
    assert key in caught.value.message


def test_the_hash_follows_the_meaning_not_the_spelling() -> None:
    default = PolicySet.from_config(PolicyConfig()).policy_set_hash
    spelled_out = PolicyConfig(
        auto_approve=["LOW", "LOW"], approval_expiry_s=86400, max_promotions_per_day=20
    )
    assert PolicySet.from_config(spelled_out).policy_set_hash == default
    stricter = PolicyConfig(auto_approve=[])
    assert PolicySet.from_config(stricter).policy_set_hash != default
    assert len(default) == 64 and int(default, 16) >= 0
