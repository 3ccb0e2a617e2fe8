"""Names, task ids and instance ids are matched whole: a final newline or any other control
character is refused, where an anchored `match` would let "$" accept a name ending in "\n"."""

from __future__ import annotations

import pytest

from enforcer.errors import InvalidArgumentError
from enforcer.model import check_task_id
from enforcer.names import check_name

CONTROL = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028"]


@pytest.mark.parametrize("name", ["spec.md", "a", "review_rubric.json", "x-1.2"])
def test_a_plain_file_name_is_accepted_as_it_is(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("char", CONTROL)
@pytest.mark.parametrize("where", ["end", "middle", "start"])
def test_a_name_with_a_control_character_anywhere_is_refused(char: str, where: str) -> None:
    name = {"end": f"nl.md{char}", "middle": f"nl{char}.md", "start": f"{char}nl.md"}[where]
    with pytest.raises(InvalidArgumentError) as raised:
        check_name(name)
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.details == {"argument": "name"}


@pytest.mark.parametrize("name", ["", "..", "a..b", "a/b", "/abs", ".hidden", "é.md", "x" * 129])
def test_a_name_that_is_not_a_plain_file_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_name(name)


@pytest.mark.parametrize("char", CONTROL)
def test_a_task_id_ending_in_a_control_character_is_refused(char: str) -> None:
    assert check_task_id("T1") == "T1"
    with pytest.raises(InvalidArgumentError) as raised:
        check_task_id(f"T1{char}")
    assert raised.value.details == {"argument": "task"}
