"""``jsonstream.loads`` (orjson where it agrees with ``json``) reads every text exactly as ``json.loads`` does:
the same value with the same types, or the same exception with the same message and column (the F001 text)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiodata.readers.jsonstream import RawItem, _parse, loads

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (floats by repr: NaN, -0.0; dict key order too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def outcome(fn: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", fn(text)
    except json.JSONDecodeError as exc:
        return "error", (type(exc).__name__, exc.msg, exc.pos, exc.colno)
    except Exception as exc:  # RecursionError, ValueError (a 5000-digit int): json's own, passed through
        return "error", (type(exc).__name__, str(exc))


def assert_reads_like_json(text: str) -> None:
    want, got = outcome(json.loads, text), outcome(loads, text)
    assert want[0] == got[0], (text[:200], want, got)
    if want[0] == "ok":
        assert same(want[1], got[1]), (text[:200], want[1], got[1])
    else:
        assert want[1] == got[1], (text[:200], want[1], got[1])


# integers around every width orjson handles (64-bit signed and unsigned) and far past it
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**18, 10**19, -(10**18), -(10**19)]),
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(width=32), st.sampled_from([1e308, 5e-324, -0.0]))
TEXTS = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXTS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(TEXTS, inner, max_size=5)),
    max_leaves=30,
)


@SETTINGS
@given(VALUES, st.booleans(), st.sampled_from([None, 0, 2]))
def test_values_json_writes_read_the_same(value: Any, ascii_only: bool, indent: int | None) -> None:
    """Whatever ``json.dumps`` writes (NaN, Infinity, lone surrogates, huge ints included) reads back the same."""
    assert_reads_like_json(json.dumps(value, ensure_ascii=ascii_only, indent=indent))


NUMBER_TEXT = st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,4})?\Z")


@SETTINGS
@given(NUMBER_TEXT)
def test_number_literals_read_the_same(text: str) -> None:
    """Numbers as people write them: long mantissas (correct rounding), huge exponents (inf, 0.0), 19+ digit ints."""
    assert_reads_like_json(text)
    assert_reads_like_json(f'{{"n": [{text}, "{text}"]}}')


@SETTINGS
@given(VALUES, st.data())
def test_broken_texts_fail_the_same(value: Any, data: st.DataObject) -> None:
    """A JSON text with characters cut, inserted or replaced: the same value, or the same error at the same column."""
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        how = data.draw(st.sampled_from(["cut", "insert", "replace"]))
        piece = data.draw(st.sampled_from([*'{}[]",:\\ 0e-.tnu\x00\x1f\ufeff', "NaN", "\\ud800", "\\u12"]))
        end = at + (1 if how != "insert" else 0)
        text = text[:at] + ("" if how == "cut" else piece) + text[end:]
    assert_reads_like_json(text)


@SETTINGS
@given(TEXTS)
def test_any_text_reads_the_same(text: str) -> None:
    assert_reads_like_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "1e400",
        "-1e400",
        "NaN",
        '{"a": Infinity}',
        '"\\ud800"',
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        '{"a": 1, "b": 2, "a": 3}',
        "\ufeff{}",
        "[" * 1100 + "]" * 1100,
        "5" + "0" * 4400,
        '{"a": "\x01"}',
    ],
)
def test_where_orjson_and_json_differ(text: str) -> None:
    """Each case orjson alone reads differently (or not at all): read as json reads it."""
    assert_reads_like_json(text)


def test_the_record_reason_is_unchanged() -> None:
    """A broken record's F001 names json's message and column, whichever parser tried first."""
    text = '{"conversations": [1, 2,]}'
    with pytest.raises(json.JSONDecodeError) as exc:
        json.loads(text)
    item = _parse(3, 7, text, 1 << 20)
    assert isinstance(item, RawItem) and item.code == "F001"
    assert item.error == f"invalid JSON: {exc.value.msg} (column 25)"
    big = _parse(0, 1, '{"id": 123456789012345678901234567890}', 1 << 20)
    assert big.obj == {"id": 123456789012345678901234567890} and type(big.obj["id"]) is int
