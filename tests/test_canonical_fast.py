"""The fast path of ``schakel.protocol.canonical.canonical_json`` writes exactly rfc8785's bytes
(and refuses exactly what rfc8785 refuses, with the same error)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol.canonical import MAX_SAFE_INTEGER, _plain, canonical_json
from schakel.protocol.errors import MalformedError


def _reference(value: Any) -> bytes | str:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeEncodeError) as exc:
        return f"cannot canonicalise value: {exc}"


def _ours(value: Any) -> bytes | str:
    try:
        return canonical_json(value)
    except MalformedError as exc:
        return exc.message


KEYS = st.text(max_size=8) | st.text(st.characters(max_codepoint=0x7f), max_size=8)
TEXT = st.text(max_size=20) | st.text(st.characters(max_codepoint=0x7f), max_size=20) \
    | st.text(st.characters(codec="utf-8"), max_size=5) | st.sampled_from(["\ud800", "a\udfffb"])
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER - 2, MAX_SAFE_INTEGER + 2) | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25)
ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(KEYS | st.integers(), children, max_size=4),
    max_leaves=15)


@settings(max_examples=600, deadline=None)
@given(PLAIN)
def test_same_bytes_as_rfc8785_on_json(value: Any) -> None:
    assert _ours(value) == _reference(value)


@settings(max_examples=300, deadline=None)
@given(ANY)
def test_same_bytes_or_error_as_rfc8785_on_anything(value: Any) -> None:
    assert _ours(value) == _reference(value)


def test_every_code_point_in_values_and_keys() -> None:
    for start in range(0, 0x110000, 0x800):
        text = "".join(chr(c) for c in range(start, start + 0x800) if not 0xd800 <= c < 0xe000)
        value = {"k": text, "l": [text], text[:3]: 1}
        assert _ours(value) == _reference(value)
    for c in range(0x80):
        value = {chr(c): chr(c), "x" + chr(c): [chr(c)]}
        assert _plain(value, 0)
        assert _ours(value) == _reference(value)


@pytest.mark.parametrize("value", [
    {"a": 1.0}, {"a": (1, 2)}, {"\u00e9": 1, "e": 2}, {"\ue000": 1, "\U0001f600": 2},
    {1: 2}, {"a": 2**53}, {"a": -(2**53)}, [True, 1, 0, False], {"s": "\ud800"},
])
def test_edge_values(value: Any) -> None:
    assert _ours(value) == _reference(value)


def test_subclasses_take_rfc8785() -> None:
    class S(str):
        pass

    class I(int):  # noqa: E742
        pass
    for value in ({"a": S("x")}, {S("k"): 1}, {"a": I(3)}):
        assert not _plain(value, 0)
        assert _ours(value) == _reference(value)


def test_deep_nesting_takes_rfc8785() -> None:
    value: Any = 1
    for _ in range(40):
        value = [value]
    assert not _plain(value, 0)
    assert _ours(value) == _reference(value)
