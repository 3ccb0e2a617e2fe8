"""Evidence names at their edges, where a weakened rule would go unnoticed: the length bound
exactly (MAX_NAME accepted, one more refused) and `..` inside a name that the pattern itself
accepts (no leading dot, so only the `..` rule can refuse it). Each refusal is asserted by code
and argument, directly and through `evidence_put`, which must then write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from phasegate_testkit import ALICE, enforcer_at, files_under, types

from enforcer.errors import InvalidArgumentError
from enforcer.names import MAX_NAME, check_name

LIMIT = 128  # the contract's figure, written out: a test bound to MAX_NAME would move with it

# Each passes the character pattern (starts with a letter or digit, then [A-Za-z0-9._-]): only
# the `..` rule refuses it.
DOTDOT = ["a..b", "a..", "spec..md", "x...y", "1..2", "a.b..c"]


def _refused(name: object) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as raised:
        check_name(name)
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.details == {"argument": "name"}
    return raised.value


def test_the_limit_is_128_characters() -> None:
    assert MAX_NAME == LIMIT


@pytest.mark.parametrize("length", [1, LIMIT - 1, LIMIT])
def test_a_name_up_to_the_limit_is_accepted(length: int) -> None:
    name = "n" * (length - 3) + ".md" if length > 3 else "n" * length
    assert len(name) == length
    assert check_name(name) == name


@pytest.mark.parametrize("length", [LIMIT + 1, LIMIT + 2, 4 * LIMIT])
def test_a_name_one_past_the_limit_is_refused_and_the_hint_names_the_limit(length: int) -> None:
    error = _refused("n" * (length - 3) + ".md")
    assert f"at most {LIMIT} characters" in error.hint
    assert "…" in error.message  # a long name is shown cut, not whole


@pytest.mark.parametrize("name", DOTDOT)
def test_dot_dot_inside_a_name_is_refused_even_without_a_leading_dot(name: str) -> None:
    assert name[0].isalnum()
    error = _refused(name)
    assert repr(name) in error.message


@pytest.mark.parametrize("name", ["a.b", "a.b.c", "x-1.2_3", "A9"])
def test_single_dots_between_characters_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", [None, 7, b"spec.md", ["spec.md"], ""])
def test_a_name_that_is_not_a_non_empty_string_is_refused(name: object) -> None:
    _refused(name)


@pytest.mark.parametrize("name", ["a..b", "n" * (LIMIT - 3) + "x.md"])
async def test_evidence_put_refuses_such_a_name_and_writes_nothing(
    tmp_path: Path, name: str
) -> None:
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        before = await types(e)
        with pytest.raises(InvalidArgumentError) as raised:
            await e.evidence_put(ALICE, "T1", name, "- x\n")
        assert raised.value.details == {"argument": "name"}
        assert await types(e) == before
        assert await e.evidence_list("T1") == []
    assert files_under(tmp_path / "blobs") == []
    assert files_under(tmp_path / "evidence" / "T1" / "STRATEGIZE") == []


async def test_evidence_put_accepts_a_name_of_exactly_the_limit(tmp_path: Path) -> None:
    name = "n" * (LIMIT - 3) + ".md"
    async with enforcer_at(tmp_path) as e:
        await e.task_start(ALICE, "t", "T1")
        rec = await e.evidence_put(ALICE, "T1", name, "- x\n")
        assert rec.name == name
        assert [r.name for r in await e.evidence_list("T1")] == [name]
    assert (tmp_path / "evidence" / "T1" / "STRATEGIZE" / name).read_text() == "- x\n"


@pytest.mark.parametrize("length", [5, 39, 40, 41, 42])
def test_a_refused_name_is_shown_whole_up_to_40_characters_and_cut_after(length: int) -> None:
    name = "a.." + "b" * (length - 3)  # refused for its '..'
    message = _refused(name).message
    if length <= 40:
        assert repr(name) in message and "…" not in message
    else:
        assert repr(name[:40] + "…") in message and name not in message
