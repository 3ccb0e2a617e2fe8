"""Module paths, module names and draft ids at every edge of their rules: each bound exactly
(accepted at it, refused one past it), each forbidden part alone, and the argument each
refusal names. A weakened rule lets a path out of the module or past the store's limits."""

from __future__ import annotations

import pytest

from enforcer.errors import InvalidArgumentError
from enforcer.names import (
    MAX_PATH,
    check_draft_id,
    check_module_name,
    check_module_path,
)

PATH_LIMIT = 1024  # written out, so a test bound to MAX_PATH cannot move with it


def _refused(check: object, value: object, argument: str) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as raised:
        check(value)  # type: ignore[operator]
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.details == {"argument": argument}
    return raised.value


def test_the_path_limit_is_1024_characters() -> None:
    assert MAX_PATH == PATH_LIMIT


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "skills/review.md",
        "a/b/c/d.txt",
        ".hidden",  # a dot file is a real name
        "a/..b/c..",  # '..' inside a part is a name, not a step up
        "x" * 255,  # one part of exactly 255 bytes
        "é" * 127 + "x",  # 255 bytes in UTF-8
        "/".join(["p"] * (PATH_LIMIT // 2)),  # 1023 characters
        "q/" * (PATH_LIMIT // 2 - 1) + "qq",  # exactly 1024 characters
    ],
)
def test_a_path_inside_the_module_is_accepted(path: str) -> None:
    assert len(path) <= PATH_LIMIT
    assert check_module_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        None,
        7,
        b"a.txt",
        "",
        "/etc/passwd",
        "/",
        "../etc/passwd",
        "a/../../b",
        "a/..",
        "..",
        ".",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "a\\b",
        "..\\a",
        "a\x00b",
        "a\nb",
        "a\x1fb",
        "a\x7fb",
        "a\tb",
        "a\x9b31mb",  # C1 control sequence introducer
        "a\x85b",  # C1 next line
        "a\u2028b",  # line separator
        "\u202eevil.md",  # right-to-left override
        "a\u2066b\u2069",  # isolates
        "\ud800.txt",  # a lone surrogate is no UTF-8
        "x" * 256,  # one part over 255 bytes
        "é" * 128,  # 256 bytes in UTF-8, 128 characters
        "q/" * (PATH_LIMIT // 2) + "q",  # 1025 characters
    ],
    ids=repr,
)
def test_a_path_that_could_leave_the_module_or_break_a_limit_is_refused(path: object) -> None:
    _refused(check_module_path, path, "path")


def test_a_refused_path_names_the_argument_it_came_in() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_module_path("../x", argument="install_to")
    assert raised.value.details == {"argument": "install_to"}


@pytest.mark.parametrize("length", [10, 59, 60, 61, 200])
def test_a_refused_path_is_shown_whole_up_to_60_characters_and_cut_after(length: int) -> None:
    path = "/" + "a" * (length - 1)  # refused: absolute
    message = _refused(check_module_path, path, "path").message
    if length <= 60:
        assert repr(path) in message and "…" not in message
    else:
        assert repr(path[:60] + "…") in message and path not in message


@pytest.mark.parametrize("name", ["m", "skills", "a.b-c_d", "9", "m" * 64])
def test_a_module_name_like_a_task_id_is_accepted(name: str) -> None:
    assert check_module_name(name) == name


@pytest.mark.parametrize(
    "name", [None, "", "m" * 65, ".m", "-m", "m/n", "m\n", "m n", "é", 3], ids=repr
)
def test_a_module_name_otherwise_is_refused(name: object) -> None:
    _refused(check_module_name, name, "module")


def test_a_refused_module_name_names_the_argument_it_came_in() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_module_name("../m", argument="name")
    assert raised.value.details == {"argument": "name"}


@pytest.mark.parametrize("draft", ["d", "D-1", "d" * 80])
def test_a_draft_id_is_accepted(draft: str) -> None:
    assert check_draft_id(draft) == draft


@pytest.mark.parametrize("draft", [None, "", "d" * 81, "_d", "d/1", "d\n", 5], ids=repr)
def test_a_draft_id_otherwise_is_refused(draft: object) -> None:
    _refused(check_draft_id, draft, "draft")
