"""Hypothesis strategies shared by the object tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

#: Arbitrary I-JSON values (integers within ±(2**53 − 1)), a few levels deep.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys and indexes) to a member or item inside ``value``."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += json_paths(v, (*prefix, i))
    return out


def set_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the member or item at ``path`` replaced by ``new``: each object and
    array on the path is a copy, everything off it (and ``new``) is shared with the
    originals.  A candidate to read -- validate, serialise -- not to change: copying the
    whole value for each of some 100,000 candidates cost the verdict tests half their time."""
    return _along(value, path, lambda node, last: node.__setitem__(last, new))


def _along(value: Any, path: tuple[Any, ...], change: Callable[[Any, Any], None]) -> Any:
    out = copy.copy(value)
    node = out
    for step in path[:-1]:
        node[step] = copy.copy(node[step])
        node = node[step]
    change(node, path[-1])
    return out


def delete_at(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` without the member or item at ``path``, shared as :func:`set_at` shares."""
    return _along(value, path, lambda node, last: node.__delitem__(last))
