"""The line reader of the stdio transport (server/framing.py): a line the SDK parses is its
message; a request it cannot parse is answered for its id (-32700 or -32600), found by a scan
that never recurses, however deep or long the line."""

from __future__ import annotations

import json

import mcp_types as types
import pytest

from server.framing import INVALID_REQUEST, PARSE_ERROR, read_message, request_ids, too_long


def answer(line: str) -> dict[str, object]:
    parsed = json.loads(line)
    assert set(parsed) == {"jsonrpc", "id", "error"} and parsed["jsonrpc"] == "2.0"
    assert set(parsed["error"]) == {"code", "message"}
    return dict(parsed)


def test_a_request_the_sdk_parses_is_its_message() -> None:
    message = read_message(b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}\n')
    assert isinstance(message, types.JSONRPCRequest) and message.id == 7


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"a":"\\ud800"}}', PARSE_ERROR),
        (
            '{"jsonrpc":"2.0","id":3,"method":"x","params":{"a":' + "[" * 5000 + "]" * 5000 + "}}",
            PARSE_ERROR,
        ),
        ('{"jsonrpc":"2.0","id":3,"method":"x","params":{"a":' + "9" * 5000 + "}}", PARSE_ERROR),
        ('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":["task_start"]}', INVALID_REQUEST),
        ('{"jsonrpc":"2.0","id":3,"method":"tools/list"', PARSE_ERROR),
    ],
    ids=["lone surrogate", "5000 deep", "5000 digits", "params array", "cut short"],
)
def test_a_request_the_sdk_cannot_parse_is_answered_for_its_id(line: str, code: int) -> None:
    answers = read_message(line.encode())
    assert isinstance(answers, list) and len(answers) == 1
    body = answer(answers[0])
    assert body["id"] == 3 and body["error"]["code"] == code  # type: ignore[index]


def test_bytes_that_are_not_utf8_are_a_parse_error() -> None:
    answers = read_message(b'{"jsonrpc":"2.0","id":"a","method":"tools/list","x":"\xed\xa0\x80"}')
    assert isinstance(answers, list)
    assert answer(answers[0])["id"] == "a"
    assert answer(answers[0])["error"]["code"] == PARSE_ERROR  # type: ignore[index]


def test_a_batch_answers_every_request_in_it_and_no_notification() -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "two", "method": "ping", "params": {"id": 99}},
    ]
    answers = read_message(json.dumps(batch).encode())
    assert isinstance(answers, list)
    assert [answer(a)["id"] for a in answers] == [1, "two"]
    assert {answer(a)["error"]["code"] for a in answers} == {INVALID_REQUEST}  # type: ignore[index]


def test_a_fractional_id_is_answered_rather_than_taken_for_a_notification() -> None:
    answers = read_message(b'{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}')
    assert isinstance(answers, list) and answer(answers[0])["id"] == 1.5
    notification = read_message(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert isinstance(notification, types.JSONRPCNotification)


def test_a_line_that_names_no_id_is_not_answered() -> None:
    assert read_message(b"hello") == []
    assert read_message(b'{"jsonrpc":"2.0","method":"x","params":[1]}') == []


def test_an_over_long_line_is_answered_from_its_first_bytes() -> None:
    prefix = b'{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"arguments":{"c":"xxxx'
    (line,) = too_long(prefix, 4096)
    body = answer(line)
    assert body["id"] == 42 and body["error"]["code"] == INVALID_REQUEST  # type: ignore[index]
    assert "4096" in body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('{"\\u0069d": 5, "method": "x"}', [5]),  # an escaped key is still "id"
        ('{"params": {"id": 1}, "id": 2}', [2]),  # only the request's own id
        ('{"id": {"x": 1}}', []),
        ('{"id": "\\ud800"}', []),  # could not be echoed as UTF-8
        ('{"id": 1' + "0" * 30 + "}", []),  # no client holds that integer
        ('{"id": null}', []),
        ('{"method": "' + "\\\\" * 1000 + '", "id": "late"}', ["late"]),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + ', "id": 9}', [9]),  # no recursion
        ("[" * 5 + "]" * 5, []),
    ],
)
def test_request_ids_are_found_by_a_flat_scan(text: str, ids: list[object]) -> None:
    assert request_ids(text) == ids
