"""The shortcuts the sync path takes give the answers of the long ways they shorten:
timestamps read without strptime, a flat object's control-character scan in one pass,
and a local-state ref checked in one scan (property tests)."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from schakel.client.state import _SEP, _check_part, _key, _row
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.base import (
    _CONTROL, TIMESTAMP_FORMAT, _no_control_flat, parse_timestamp,
)

_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=5)
_NEAR_TIMESTAMPS = st.builds(
    lambda y, mo, d, h, mi, s, z: f"{y}-{mo}-{d}T{h}:{mi}:{s}{z}",
    _DIGITS, _DIGITS, _DIGITS, _DIGITS, _DIGITS, _DIGITS, st.sampled_from(["Z", "", "z", "ZZ"]))


@given(st.one_of(_NEAR_TIMESTAMPS, st.text(max_size=25)))
def test_parse_timestamp_reads_what_strptime_reads(text: str) -> None:
    try:
        expected = datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        with pytest.raises(ValueError):
            parse_timestamp(text)
        return
    assert parse_timestamp(text) == expected


_SCALARS = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none())


@given(st.dictionaries(st.text(max_size=8), st.one_of(_SCALARS, st.lists(st.text(max_size=3)))))
def test_flat_scan_finds_every_control_character(value: dict[str, object]) -> None:
    nested = any(not isinstance(v, (str, int, bool, type(None))) for v in value.values())
    clean = all(_CONTROL.search(k) is None for k in value) and all(
        _CONTROL.search(v) is None for v in value.values() if isinstance(v, str))
    assert _no_control_flat(value) == (clean and not nested)


_PART = st.text(alphabet=string.ascii_letters + "/\x00\x1e\x1f\x7f-é", max_size=6)


@given(st.text(alphabet=string.ascii_letters + "/\x1f", max_size=4),
       st.one_of(st.tuples(), st.lists(_PART, max_size=4).map(tuple), st.lists(_PART, max_size=3),
                 _PART))
@example("docs", ("a\x1fb",))              # the separator inside a component
@example("docs", ("a", "b\x1f"))
@example("do\x1fcs", ("a",))
@example("docs", ("a" * 257,))
@example("docs", ("",))
def test_state_key_checks_what_the_part_checks_check(kind: str, ref: object) -> None:
    try:
        expected = (_check_part(kind, "kind"), _SEP.join(_row(ref)))  # type: ignore[arg-type]
    except MalformedError:
        with pytest.raises(MalformedError):
            _key(kind, ref)  # type: ignore[arg-type]
        return
    assert _key(kind, ref) == expected  # type: ignore[arg-type]
