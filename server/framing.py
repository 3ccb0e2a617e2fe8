"""One line of stdio input: the JSON-RPC message in it, or the answers to a request that cannot
be served.

The SDK's stdio transport drops a line it cannot parse, so a client whose request holds a lone
surrogate, is nested deeper than the parser goes, carries an integer past its range, gives
`params` as an array, comes as a batch, or is longer than the line limit waits for its own
timeout. Here every such line that names a request id gets a JSON-RPC error for that id:
``-32700`` (parse error) when the text is not JSON the parser accepts (not UTF-8, a lone
surrogate, too deep, a number out of range), ``-32600`` (invalid request) when it is JSON but
not a request MCP serves (a batch, `params` not an object, a line past the limit). The id is
found by a small scanner that never recurses and reads at most `SCAN_LIMIT` characters, so it
works on text the parser refused and on the first bytes of an over-long line. A line that names
no id (a notification, garbage) has nobody waiting for it: it is logged and dropped, as
JSON-RPC answers no notification (an answer with id null would only trip strict clients).

    message = read_message(b'{"jsonrpc":"2.0","id":7,"method":"tools/list"}')   # a message
    read_message(b'[{"jsonrpc":"2.0","id":7,"method":"tools/list"}]')           # [answer line]
"""

from __future__ import annotations

import json
import re

import mcp_types as types
from pydantic import ValidationError

__all__ = [
    "INVALID_REQUEST",
    "PARSE_ERROR",
    "SCAN_LIMIT",
    "read_message",
    "request_ids",
    "too_long",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
SCAN_LIMIT = 1 << 20  # characters of a refused line searched for request ids

# JSON tokens: a string (unrolled, so no backtracking), a structural character, or a run of
# anything else (numbers, literals). Whitespace is skipped between matches.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]|[^\s"{}\[\],:]+', re.S)
_INT_ID = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")  # an integer id that every client can hold
_FRACTION_ID = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?(?:[eE][-+]?[0-9]{1,2})?")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

RequestId = int | str


def read_message(raw: bytes) -> types.JSONRPCMessage | list[str]:
    """The message on a line, parsed exactly as the SDK's transport parses it; or, when it
    cannot be, the answer lines for the request ids it names (empty when it names none)."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(raw, by_name=False)
    except ValidationError as e:
        return _answers(raw, e)
    if isinstance(message, types.JSONRPCNotification) and b'"id"' in raw:
        # The SDK reads a request whose id is a fraction (JSON-RPC allows any number; MCP
        # only strings and integers) as a notification, and its sender would wait forever.
        ids = request_ids(raw.decode("utf-8", "replace"), fractions=True)
        message_text = "Invalid Request: id must be a string or an integer"
        return [_answer(i, INVALID_REQUEST, message_text) for i in ids if isinstance(i, float)]
    return message


def too_long(prefix: bytes, limit: int) -> list[str]:
    """Answers for a line longer than `limit` bytes, from the ids in its first bytes."""
    text = prefix.decode("utf-8", "replace")
    message = f"Invalid Request: a request line may be at most {limit} bytes"
    return [_answer(i, INVALID_REQUEST, message) for i in request_ids(text)]


def _answers(raw: bytes, error: ValidationError) -> list[str]:
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    text = raw.decode("utf-8", "replace")
    batch = text.lstrip().startswith("[")
    first = problems[0] if problems else {"type": "", "msg": "invalid", "loc": ()}
    if first["type"] == "json_invalid":
        code, message = PARSE_ERROR, f"Parse error: {first['msg']}"
    elif batch:
        code = INVALID_REQUEST
        message = "Invalid Request: batches are not supported (MCP); send one request per line"
    else:
        # The union's request branch says what is wrong with a request (e.g. params: array).
        mine = [p for p in problems if p["loc"][:1] == ("JSONRPCRequest",)] or problems
        where = ".".join(str(part) for part in mine[0]["loc"][1:]) or "message"
        code, message = INVALID_REQUEST, f"Invalid Request: {where}: {mine[0]['msg']}"
    return [_answer(i, code, message) for i in request_ids(text)]


def _answer(request_id: RequestId | float, code: int, message: str) -> str:
    return _ENCODER.encode(
        {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    )


def request_ids(text: str, *, fractions: bool = False) -> list[RequestId | float]:
    """The `id` of the request object in `text`, or of each object of a top-level array.

    A linear scan of tokens with an explicit stack: no recursion however deep the nesting, no
    number conversion however long the digits, and escapes are only decoded for keys and
    string ids. Ids that a client could not have sent (not a string or an integer of at most
    18 digits, or a string that is not Unicode) are skipped; `fractions` admits numbers with
    a fraction or an exponent too (to answer the request that sent one)."""
    ids: list[RequestId | float] = []
    stack: list[str] = []
    expect_key = False
    key: str | None = None
    found = False  # the current request object has given its id
    for match in _TOKEN.finditer(text, 0, min(len(text), SCAN_LIMIT)):
        token = match.group()
        head = token[0]
        if head in "{[":
            stack.append(head)
            expect_key, key = head == "{", None
            if head == "{" and _request_level(stack):
                found = False
            continue
        if head in "}]":
            if not stack:
                break
            stack.pop()
            expect_key, key = False, None
            if not stack:
                break  # the end of the top-level value
            continue
        if head == ",":
            expect_key, key = bool(stack) and stack[-1] == "{", None
            continue
        if head == ":":
            continue
        if not _request_level(stack):
            continue
        if expect_key:
            key = _string(token) if head == '"' else None
            expect_key = False
        elif key == "id" and not found:
            value = _id(token, fractions)
            if value is not None:
                ids.append(value)
            found, key = True, None
        else:
            key = None
    return ids


def _request_level(stack: list[str]) -> bool:
    """Inside the request object itself, or inside one object of a top-level array."""
    return stack == ["{"] or stack == ["[", "{"]


def _string(token: str) -> str | None:
    try:
        value = json.loads(token)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _id(token: str, fractions: bool) -> RequestId | float | None:
    if token.startswith('"'):
        value = _string(token)
        if value is None:
            return None
        try:
            value.encode("utf-8")  # a lone surrogate could not be echoed back as UTF-8
        except UnicodeEncodeError:
            return None
        return value
    if _INT_ID.fullmatch(token):
        return int(token)
    return float(token) if fractions and _FRACTION_ID.fullmatch(token) else None
