"""Path rules answer as git would (pathspec's GitIgnoreSpec), naming the pattern that matched."""

from __future__ import annotations

import pathspec
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.policy.paths import PathRule, Paths, literal_of

PATTERNS = ["secrets/**", "LICENSE", "**/auth/**", "docs/", "*.pem", "/build", "config/*.toml"]
PATHS = [
    "secrets/key",
    "secrets/a/b/c",
    "x/secrets/key",
    "LICENSE",
    "vendor/LICENSE",
    "LICENSE.md",
    "src/auth/login.py",
    "auth/x",
    "authx/y",
    "docs/a/b.md",
    "mydocs/a",
    "certs/server.pem",
    "build/out.bin",
    "src/build/out.bin",
    "config/app.toml",
    "config/deep/app.toml",
    "README.md",
]


def test_matches_agree_with_pathspec_and_name_the_pattern() -> None:
    rule = PathRule(PATTERNS)
    spec = pathspec.GitIgnoreSpec.from_lines(PATTERNS)
    found = dict(rule.matches(PATHS))
    assert set(found) == {p for p in PATHS if spec.match_file(p)}
    assert found["secrets/a/b/c"] == "secrets/**"
    assert found["vendor/LICENSE"] == "LICENSE"
    assert found["certs/server.pem"] == "*.pem"
    assert "x/secrets/key" not in found and "src/build/out.bin" not in found


def test_a_negation_takes_a_path_back_out_as_in_git() -> None:
    rule = PathRule(["secrets/**", "!secrets/public.txt"])
    assert rule.matches(["secrets/a", "secrets/public.txt", "b"]) == [("secrets/a", "secrets/**")]


def test_an_empty_rule_matches_nothing() -> None:
    assert PathRule([]).matches(PATHS) == [] and not PathRule([])


_part = st.sampled_from(["secrets", "auth", "docs", "LICENSE", "a", "b.pem", "build", "config"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_part, min_size=1, max_size=4).map("/".join), max_size=20))
def test_the_fast_path_equals_pathspec_on_any_paths(paths: list[str]) -> None:
    rule = PathRule(PATTERNS)
    spec = pathspec.GitIgnoreSpec.from_lines(PATTERNS)
    assert [p for p, _ in rule.matches(paths)] == [p for p in paths if spec.match_file(p)]


POOL = [
    "secrets/**",
    "LICENSE",
    "**/auth/**",
    "docs/",
    "*.pem",
    "/build",
    "config/*.toml",
    "a/**/b",
    "x?z",
    "[ab]c/*",
    "*",
    "**",
    "key ",
    "!secrets/public",
    "auth",
    "*/x/*",
]
_name = st.sampled_from(
    [
        "secrets",
        "auth",
        "docs",
        "LICENSE",
        "a",
        "b",
        "bc",
        "xyz",
        "x",
        "b.pem",
        "build",
        "config",
        "c.toml",
        "key",
        "public",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(POOL), min_size=1, max_size=5),
    st.lists(st.lists(_name, min_size=1, max_size=4).map("/".join), max_size=25),
)
def test_any_patterns_on_any_paths_answer_as_pathspec(
    patterns: list[str], paths: list[str]
) -> None:
    rule = PathRule(patterns)
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    expected = [p for p in paths if spec.match_file(p)]
    assert [p for p, _ in rule.matches(Paths(paths))] == expected
    assert [p for p, _ in rule.matches(paths)] == expected


def test_the_literal_a_path_must_hold() -> None:
    assert literal_of("secrets/**") == "secrets"
    assert literal_of("**/auth/**") == "auth"
    assert literal_of("*.pem") == ".pem"
    assert literal_of("prompts/system.md") == "prompts/system.md"
    assert literal_of("[ab]c/*") == "c"
    assert literal_of("*") is None and literal_of("**") is None
    assert literal_of("\\#x") is None and literal_of("a[b") is None


def test_a_path_is_reported_once_whatever_the_literals_it_holds() -> None:
    rule = PathRule(["*.pem", "secrets/**"])
    assert rule.matches(Paths(["secrets/k.pem", "k.pem.pem"])) == [
        ("secrets/k.pem", "*.pem"),
        ("k.pem.pem", "*.pem"),
    ]
