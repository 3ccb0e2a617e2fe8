"""The canonical encoder equals RFC 8785 (the `rfc8785` package) on the ledger's subset of JSON,
refuses everything outside it, and the verifier's checks recognise only canonical bytes."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.errors import InvalidArgumentError
from enforcer.ledger import canonical
from enforcer.ledger.canonical import MAX_SAFE_INT

# Text with every plane represented: hypothesis' default alphabet plus characters outside the
# BMP (where JCS's UTF-16 key order differs from code point order) and the escaped controls.
chars = st.one_of(
    st.characters(codec="utf-8"),  # every code point but surrogates, which UTF-8 cannot carry
    st.characters(min_codepoint=0x10000, codec="utf-8"),
    st.characters(max_codepoint=0x1F),
    st.sampled_from('"\\/\x7f\u2028\ufeff\uffff'),
)
texts = st.text(alphabet=chars, max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_encode_equals_rfc8785_for_every_float_free_json_value(value: Any) -> None:
    assert canonical.encode(value) == rfc8785.dumps(value)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decoding_canonical_bytes_gives_the_value_back_and_they_are_canonical(value: Any) -> None:
    raw = canonical.encode(value)
    decoded = canonical.decode(raw)
    assert decoded == value
    assert canonical.is_canonical(raw, decoded)
    assert canonical.first_non_canonical([raw], [decoded]) is None


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_is_canonical_agrees_with_rfc8785_on_other_encodings(value: Any) -> None:
    for raw in (
        json.dumps(value).encode(),  # spaces, ASCII escapes
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),  # unsorted keys
        json.dumps(value, sort_keys=True, indent=1).encode(),
    ):
        assert canonical.is_canonical(raw, canonical.decode(raw)) == (raw == rfc8785.dumps(value))


def test_keys_outside_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FFFF, unlike in code point order.
    value = {"\uffff": 1, "\U0001f600": 2, "a": 3}
    raw = canonical.encode(value)
    assert raw == rfc8785.dumps(value)
    assert raw.index("\U0001f600".encode()) < raw.index("\uffff".encode())
    assert canonical.is_canonical(raw, canonical.decode(raw))
    wrong = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    assert not canonical.is_canonical(wrong, canonical.decode(wrong))


def test_the_largest_safe_integers_are_accepted() -> None:
    for n in (MAX_SAFE_INT, -MAX_SAFE_INT, 0):
        assert canonical.decode(canonical.encode({"n": n})) == {"n": n}


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        0.5,
        -0.0,
        float("nan"),
        float("inf"),
        {"a": [1, 2.5]},
        2**53,
        -(2**53),
        2**64,
        10**5000,
        {"deep": [[2**63]]},
    ],
    ids=lambda v: "10**5000" if v == 10**5000 else repr(v),
)
def test_floats_and_integers_beyond_2_53_are_refused(value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        canonical.encode(value)
    assert caught.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        frozenset(),
        b"bytes",
        bytearray(b"x"),
        object(),
        decimal.Decimal("1"),
        datetime.datetime(2026, 1, 1),
        {"a": {"nested": {1, 2}}},
        {"a": b"x"},
        [object()],
    ],
    ids=lambda v: type(v).__name__,
)
def test_non_json_types_are_refused(value: Any) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        canonical.encode(value)
    assert caught.value.code == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {True: 1}, {None: 1}, {(1, 2): "t"}, {"a": {2: "b"}}, {1: "a", "b": 2}],
    ids=repr,
)
def test_non_string_keys_are_refused(value: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        canonical.encode(value)


def test_cyclic_and_absurdly_deep_values_are_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for value in (cyclic, deep):
        with pytest.raises(InvalidArgumentError):
            canonical.encode(value)


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        canonical.encode({"a": "\ud800"})


NON_CANONICAL = [
    b'{"a": 1}',  # whitespace between tokens
    b'{"b":1,"a":2}',  # keys out of order
    b'{"a":1,"a":1}',  # duplicate key
    b'{"a":"\\u0041"}',  # an escape where none is needed
    b'{"a":"\\/"}',  # an escaped solidus
    b'{"a":"\\u000a"}',  # \u000a where \n is the canonical form
    b'{"a":"\\u001F"}',  # upper-case hex
    b'{"a":"caf\\u00e9"}',  # non-ASCII must be UTF-8, not escaped
    b'{"a":-0}',  # minus zero
    b"[1,2 ]",
    b"[\n]",
]


@pytest.mark.parametrize("raw", NON_CANONICAL, ids=lambda r: r.decode())
def test_is_canonical_rejects_whitespace_reordered_keys_and_needless_escapes(raw: bytes) -> None:
    value = canonical.decode(raw)
    assert not canonical.is_canonical(raw, value)
    assert canonical.first_non_canonical([raw], [value]) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"1.5",
        b"1e3",
        b"1E3",
        b"-0.0",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"9007199254740992",
        b"-9007199254740992",
        b"1" * 5000,
        b'{"a":1',
        b"",
        b" {}",  # surrounding whitespace: never canonical
        b"{} ",
        b"{}{}",
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        b'"\xff"',  # not UTF-8
        b'"\xed\xa0\x80"',  # an encoded surrogate: not UTF-8
        '{"a":1}'.encode("utf-16"),
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser goes
    ],
    ids=lambda r: repr(r[:24]),
)
def test_decode_refuses_floats_unsafe_integers_and_malformed_bytes_with_value_error(
    raw: bytes,
) -> None:
    with pytest.raises(ValueError):
        canonical.decode(raw)


def test_decode_decides_sixteen_digit_integers_exactly() -> None:
    ok = b'{"n":9007199254740991,"s":"12345678901234567890"}'
    assert canonical.decode(ok) == {"n": MAX_SAFE_INT, "s": "12345678901234567890"}
    with pytest.raises(ValueError):
        canonical.decode(b'{"n":9007199254740992}')


def test_first_non_canonical_finds_the_first_bad_entry_of_a_batch() -> None:
    raws = [canonical.encode({"i": i, "s": "x" * i}) for i in range(50)]
    raws[31] = raws[31].replace(b",", b", ")
    raws[40] = raws[40].replace(b",", b", ")
    values = [canonical.decode(r) for r in raws]
    assert canonical.first_non_canonical(raws, values) == 31
    assert canonical.first_non_canonical(raws[:31], values[:31]) is None
    assert canonical.first_non_canonical([], []) is None


def test_first_non_canonical_handles_batches_with_characters_outside_the_bmp() -> None:
    good = [canonical.encode({"\U0001f600": 1, "\uffff": 2}), canonical.encode({"a": "😀"})]
    bad = json.dumps(
        {"\U0001f600": 1, "\uffff": 2}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()
    batch = [*good, bad]
    values = [canonical.decode(r) for r in batch]
    assert canonical.first_non_canonical(good, values[:2]) is None
    assert canonical.first_non_canonical(batch, values) == 2


def test_first_non_canonical_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        canonical.first_non_canonical([b"{}"], [])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(json_values, st.sampled_from(["canonical", "spaced", "ascii"]))))
def test_first_non_canonical_agrees_with_checking_entry_by_entry(
    items: list[tuple[Any, str]],
) -> None:
    raws = []
    for value, form in items:
        if form == "canonical":
            raws.append(canonical.encode(value))
        elif form == "spaced":
            raws.append(json.dumps(value, sort_keys=True).encode())
        else:
            raws.append(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    values = [canonical.decode(r) for r in raws]
    expected = next(
        (i for i, (r, v) in enumerate(zip(raws, values, strict=True)) if r != rfc8785.dumps(v)),
        None,
    )
    assert canonical.first_non_canonical(raws, values) == expected
