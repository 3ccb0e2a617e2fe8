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
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError, TypeError,
            RecursionError) as e:
        raise InvalidArgumentError(f"not a ledger value: {e}") from e
    if back != value:
        raise InvalidArgumentError(
            "not a ledger value: only str keys, str/int/bool/null/list/object values"
        )
    return raw


def _fast(value: Any) -> bytes:
    """Sorted-key compact JSON: byte-equal to RFC 8785 for float-free values whose text has no
    character outside the BMP (JCS sorts keys by UTF-16 code units; Python by code points, which
    agree inside the BMP; both escape exactly the control characters, quote and backslash, with
    the same short forms and lowercase hex). The equivalence is property-tested against rfc8785.
    """
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
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
