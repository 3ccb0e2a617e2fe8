"""The one canonical JSON encoder (RFC 8785, JCS) used by the ledger and by attestations.

Ledger values are restricted further than JCS: no floats at all and integers within
±(2**53 - 1), so every entry means the same thing to every JSON reader.

    >>> encode({"b": 1, "a": [True, None, "x"]})
    b'{"a":[true,null,"x"],"b":1}'
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

from .errors import InvalidArgumentError

__all__ = ["MAX_SAFE_INT", "decode", "encode", "is_canonical"]

MAX_SAFE_INT = 2**53 - 1
_ASTRAL = re.compile(rb"[\xf0-\xf4]")  # lead byte of a 4-byte UTF-8 sequence


def _check(value: Any, path: str, depth: int) -> None:
    if depth > 32:
        raise InvalidArgumentError(f"{path}: nested deeper than 32 levels")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise InvalidArgumentError(f"{path}: integer {value} is outside ±(2**53 - 1)")
        return
    if isinstance(value, float):
        raise InvalidArgumentError(f"{path}: floats are not allowed in ledger values")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(f"{path}: object keys must be strings, got {key!r}")
            _check(item, f"{path}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    raise InvalidArgumentError(f"{path}: {type(value).__name__} is not a JSON type")


def encode(value: Any) -> bytes:
    """RFC 8785 bytes of `value`; raises InvalidArgumentError for anything outside the subset."""
    _check(value, "$", 0)
    try:
        fast = _fast(value)
        if not _ASTRAL.search(fast):
            return fast
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError, TypeError) as e:
        raise InvalidArgumentError(f"not canonicalisable: {e}") from e


def _fast(value: Any) -> bytes:
    """Sorted-key compact JSON: byte-equal to RFC 8785 for float-free values whose text has no
    character outside the BMP (JCS sorts keys by UTF-16 code units; Python by code points, which
    agree inside the BMP; both escape exactly the control characters, quote and backslash, with
    the same short forms and lowercase hex). The equivalence is property-tested against rfc8785.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _no_float(text: str) -> Any:
    raise ValueError(f"float {text} in canonical data")


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise ValueError(f"integer {text} outside ±(2**53 - 1)")
    return value


def decode(raw: bytes) -> Any:
    """Parse ledger bytes, refusing floats, NaN/Infinity and unsafe integers (ValueError)."""
    return json.loads(raw, parse_float=_no_float, parse_int=_bounded_int, parse_constant=_no_float)


def is_canonical(raw: bytes, value: Any) -> bool:
    """True when `raw` is exactly the RFC 8785 encoding of `value` (already decoded from `raw`).

    For float-free values JCS equals sorted-key compact `json.dumps` except in key order when a
    key holds a character outside the BMP (JCS sorts by UTF-16 code units), so the fast encoder
    decides unless the bytes contain a 4-byte UTF-8 sequence; then rfc8785 itself decides.
    Verification of a large ledger runs several times faster this way.
    """
    try:
        if _ASTRAL.search(raw):
            return bytes(rfc8785.dumps(value)) == raw
        return _fast(value) == raw
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        return False
