"""The one canonical JSON encoder (RFC 8785, JCS) used by the ledger and by attestations.

Ledger values are restricted further than JCS: no floats at all and integers within
±(2**53 - 1), so every entry means the same thing to every JSON reader.

    >>> encode({"b": 1, "a": [True, None, "x"]})
    b'{"a":[true,null,"x"],"b":1}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import rfc8785

from ..errors import InvalidArgumentError

__all__ = [
    "MAX_SAFE_INT",
    "decode",
    "encode",
    "first_non_canonical",
    "is_canonical",
]

MAX_SAFE_INT = 2**53 - 1
_ASTRAL = re.compile(rb"[\xf0-\xf4]")  # lead byte of a 4-byte UTF-8 sequence


def encode(value: Any) -> bytes:
    """RFC 8785 bytes of `value`; raises InvalidArgumentError for anything outside the subset.

    The subset is checked by decoding the bytes again with the strict decoder and comparing with
    `value` (both in C): a float, an unsafe integer, a non-string key or a non-JSON type cannot
    survive the round trip unchanged.
    """
    try:
        raw = _fast(value)
        if _ASTRAL.search(raw):
            raw = bytes(rfc8785.dumps(value))
        back = decode(raw)
    except (
        rfc8785.CanonicalizationError,
        UnicodeEncodeError,
        ValueError,
        TypeError,
        RecursionError,
    ) as e:
        raise InvalidArgumentError(f"not a ledger value: {e}") from e
    if back != value:
        raise InvalidArgumentError(
            "not a ledger value: only str keys, str/int/bool/null/list/object values"
        )
    return raw


# Built once: json.dumps/json.loads with keyword arguments build a new encoder/decoder per call,
# which costs more than encoding a small entry. Without `check_circular` a cyclic value ends in
# RecursionError, which `encode` refuses like any other non-ledger value.
_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    check_circular=False,
)


def _fast(value: Any) -> bytes:
    """Sorted-key compact JSON: byte-equal to RFC 8785 for float-free values whose text has no
    character outside the BMP (JCS sorts keys by UTF-16 code units; Python by code points, which
    agree inside the BMP; both escape exactly the control characters, quote and backslash, with
    the same short forms and lowercase hex). The equivalence is property-tested against rfc8785.
    """
    return _ENCODER.encode(value).encode("utf-8")


def _no_float(text: str) -> Any:
    raise ValueError(f"float {text} in canonical data")


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise ValueError(f"integer {text} outside ±(2**53 - 1)")
    return value


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_int=_bounded_int, parse_constant=_no_float)
# Every JSON integer beyond ±(2**53 - 1) has at least 16 digits (JSON has no leading zeros and
# no integer exponents), so bytes without a run of 16 digits need no per-integer callback.
_SAFE_INTS = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)
# A run of 16 digits, found by mapping every digit to "1" (C speed; a regex takes ~6x longer).
_DIGITS_TO_ONES = bytes.maketrans(b"0123456789", b"1111111111")
_SIXTEEN_ONES = b"1" * 16


def decode(raw: bytes) -> Any:
    """Parse ledger bytes: exactly one JSON value in strict UTF-8, no surrounding whitespace.

    Raises ValueError for invalid UTF-8 or JSON, floats, NaN/Infinity, integers outside
    ±(2**53 - 1), trailing data, and nesting too deep for the parser.
    """
    text = bytes(raw).decode("utf-8")
    decoder = _DECODER if _SIXTEEN_ONES in bytes(raw).translate(_DIGITS_TO_ONES) else _SAFE_INTS
    try:
        value, end = decoder.raw_decode(text)
    except RecursionError as e:
        raise ValueError("JSON nested too deeply") from e
    if end != len(text):
        raise ValueError(f"trailing data at offset {end}")
    return value


def is_canonical(raw: bytes, value: Any) -> bool:
    """True when `raw` is exactly the RFC 8785 encoding of `value` (already decoded from `raw`).

    For float-free values JCS equals sorted-key compact `json.dumps` except in key order when a
    key holds a character outside the BMP (JCS sorts by UTF-16 code units), so the fast encoder
    decides unless the bytes contain a 4-byte UTF-8 sequence; then rfc8785 itself decides.
    Verification of a large ledger runs several times faster this way.
    """
    try:
        if not raw.isascii() and _ASTRAL.search(raw):
            return bytes(rfc8785.dumps(value)) == raw
        return _fast(value) == raw
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError, RecursionError):
        return False


def first_non_canonical(raws: Sequence[bytes], values: Sequence[Any]) -> int | None:
    """Index of the first `raws[i]` that is not the RFC 8785 encoding of `values[i]`, or None.

    Precondition: each `values[i]` was decoded from the whole of `raws[i]` (as `decode` does).
    The batch is encoded as one JSON array and compared with the raws joined the same way: one
    C call and one comparison instead of one per entry. Equal joins imply equal parts, because a
    complete JSON text that parses whole cannot be a proper prefix of another such text (objects,
    arrays, strings and literals end on their own delimiter; a canonical integer has one form).
    Batches holding characters outside the BMP, or that differ, are checked entry by entry.
    """
    if len(raws) != len(values):
        raise ValueError("raws and values differ in length")
    if not raws:
        return None
    joined = b"[" + b",".join(raws) + b"]"
    if joined.isascii() or not _ASTRAL.search(joined):
        try:
            if _ENCODER.encode(list(values)).encode("utf-8") == joined:
                return None
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            pass
    for index, (raw, value) in enumerate(zip(raws, values, strict=True)):
        if not is_canonical(raw, value):
            return index
    return None
