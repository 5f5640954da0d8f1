"""The compiled verdicts of protocol/schema.py (``_compiled``) against jsonschema.

``schema.validate`` accepts a value when its compiled verdict says "valid" and asks
jsonschema (the bundled strict validator, itself checked against the registry in
tests/test_schema.py) only to report a refusal.  So the compiled verdict must be exactly
jsonschema's ``is_valid``: on every example object and vector, on thousands of broken
variants of them, on arbitrary JSON and on arbitrary JSON planted inside valid objects.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol import schema
from schakel.protocol.errors import MalformedError
from tests.strategies import JSON, json_paths, set_at
from tests.test_schema import EXAMPLES, REPLACEMENTS, variants

TYPES = sorted({t for t, _ in EXAMPLES})

#: More values that probe the strict rules and the type checker.
TRICKY: tuple[Any, ...] = (1.5, -0.0, 1e300, 2**53 - 1, -(2**53) + 1, 1000000000, 1000000001,
                           "open", "closed", "event", "A" * 21 + "A", "A" * 21 + "A\n",
                           "A" * 21 + "B", "A" * 43, "A" * 42 + "E", "2026-02-28T23:59:59Z",
                           "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-01-01T24:00:00Z",
                           "2026-01-01T00:00:00Z\n", "\u00e9", "\u200b", "a b", " ", "\x7f",
                           ["a"], ["a", "a"], [1, True], [1, 1.0], [{"a": 1}, {"a": 1}],
                           {"sign": "x", "box": "y"})


def _verdicts(obj_type: str, value: Any, def_name: str = "") -> tuple[bool, bool]:
    fast = schema._compiled(obj_type, def_name)
    assert fast is not None
    reference = (schema._def_validator(obj_type, def_name) if def_name
                 else schema._validator(obj_type))
    return fast(value), reference.is_valid(value)


def test_every_schema_and_definition_is_compiled() -> None:
    schemas, _ = schema._load()
    for obj_type in schema.known_types():
        assert schema._compiled(obj_type, "") is not None, obj_type
    for obj_type, document in schemas.items():
        for name in document.get("$defs", {}):
            assert schema._compiled(obj_type, name) is not None, (obj_type, name)


@pytest.mark.parametrize("obj_type", TYPES)
def test_compiled_verdicts_on_examples_and_their_variants(obj_type: str) -> None:
    seen = 0
    for kind, value in EXAMPLES:
        if kind != obj_type:
            continue
        assert _verdicts(obj_type, value) == (True, True)
        for variant in variants(value):
            fast, reference = _verdicts(obj_type, variant)
            assert fast == reference, variant
            seen += 1
        for path in json_paths(value):
            for new in TRICKY:
                variant = set_at(value, path, new)
                assert _verdicts(obj_type, variant)[0] == _verdicts(obj_type, variant)[1], variant
    assert seen > 10


def test_compiled_definitions_agree() -> None:
    schemas, _ = schema._load()
    for obj_type, document in schemas.items():
        for name in document.get("$defs", {}):
            for value in (*REPLACEMENTS, *TRICKY):
                fast, reference = _verdicts(obj_type, value, name)
                assert fast == reference, (obj_type, name, value)


@pytest.mark.parametrize("obj_type", schema.known_types())
@settings(max_examples=40, deadline=None)
@given(value=JSON)
def test_compiled_verdicts_on_arbitrary_json(obj_type: str, value: Any) -> None:
    fast, reference = _verdicts(obj_type, value)
    assert fast == reference


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_compiled_verdicts_on_json_planted_in_valid_objects(data: st.DataObject) -> None:
    obj_type, value = data.draw(st.sampled_from(EXAMPLES))
    paths = json_paths(value)
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    variant = set_at(value, path, data.draw(JSON | st.sampled_from(TRICKY)))
    fast, reference = _verdicts(obj_type, variant)
    assert fast == reference, variant


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_compiled_verdicts_with_members_added(data: st.DataObject) -> None:
    obj_type, value = data.draw(st.sampled_from(EXAMPLES))
    dicts = [p for p in [(), *json_paths(value)] if isinstance(_get(value, p), dict)]
    path = data.draw(st.sampled_from(dicts))
    key = data.draw(st.text(max_size=12) | st.sampled_from(sorted(_get(value, path))))
    variant = copy.deepcopy(value)
    _get(variant, path)[key] = data.draw(JSON)
    fast, reference = _verdicts(obj_type, variant)
    assert fast == reference, variant


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def test_refusals_are_still_worded_by_jsonschema_without_values() -> None:
    event = copy.deepcopy(next(v for t, v in EXAMPLES if t == "event"))
    event["network"] = "SECRET-VALUE\n"
    event["seq"] = 1.0
    with pytest.raises(MalformedError) as info:
        schema.validate("event", event)
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value.details)
    assert info.value.details["problems"] == [
        "network: has the wrong format", "seq: must be of type integer"]


def test_non_json_containers_are_refused_as_before() -> None:
    envelope = next(v for t, v in EXAMPLES if t == "envelope")
    for broken in ({**envelope, "signatures": tuple(envelope["signatures"])},
                   {**envelope, "signed": tuple(envelope["signed"].items())}):
        assert _verdicts("envelope", broken) == (False, False)
        with pytest.raises(MalformedError):
            schema.validate("envelope", broken)
